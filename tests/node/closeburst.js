// Publish a burst, then close the connection at once (amqplib writes connection.close
// ahead of publishes still queued in its channel mux). Prints one JSON line: whether
// the close callback fired, with what error, and any 'error'/'close' events.
const amqp = require('amqplib/callback_api');

const [url, queue, count] = [process.argv[2], process.argv[3], Number(process.argv[4])];
const result = { closed: false, closeError: null, events: [] };
const done = (code) => { console.log(JSON.stringify(result)); process.exit(code); };
setTimeout(() => done(3), 20000);

amqp.connect(url, (err, conn) => {
  if (err) { result.connectError = String(err); return done(2); }
  conn.on('error', (e) => result.events.push(`error: ${e}`));
  conn.on('close', (e) => result.events.push(`close: ${e || ''}`));
  conn.createChannel((err2, ch) => {
    if (err2) { result.channelError = String(err2); return done(2); }
    ch.assertQueue(queue, { autoDelete: false }, () => {
      const body = Buffer.alloc(1000, 'x');
      for (let i = 0; i < count; i++) ch.sendToQueue(queue, body);
      conn.close((e) => {
        result.closed = true;
        result.closeError = e ? String(e) : null;
        done(0);
      });
    });
  });
});
