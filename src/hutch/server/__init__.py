"""The asyncio side: listener, connections, channels."""
