// A work queue with Node's amqplib: confirm-channel publisher, prefetch-1
// consumer with manual acks; prints one JSON line with what it saw.
const amqp = require('amqplib');

async function main() {
  const url = process.argv[2];
  const queue = process.argv[3];
  const conn = await amqp.connect(url);
  const pub = await conn.createConfirmChannel();
  await pub.assertQueue(queue, { durable: true });
  for (let i = 0; i < 10; i++) {
    pub.sendToQueue(queue, Buffer.from(`task ${i}`), { persistent: true, headers: { n: i } });
  }
  await pub.waitForConfirms();
  const ch = await conn.createChannel();
  await ch.prefetch(1);
  const seen = [];
  await new Promise((resolve) => {
    ch.consume(queue, (msg) => {
      if (msg === null) return;  // server-sent cancel (the queue is deleted below)
      seen.push({ body: msg.content.toString(), n: msg.properties.headers.n,
                  persistent: msg.properties.deliveryMode === 2, redelivered: msg.fields.redelivered });
      ch.ack(msg);
      if (seen.length === 10) resolve();
    });
  });
  let refused = null;
  const bad = await conn.createChannel();
  bad.on('error', () => {});
  try { await bad.checkQueue(queue + '.missing'); } catch (e) { refused = e.code; }
  await ch.deleteQueue(queue);
  await conn.close();
  console.log(JSON.stringify({ seen, refused }));
}
main().catch((e) => { console.error(e); process.exit(1); });
