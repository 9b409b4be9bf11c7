// A Node `ws` echo server for wstool's interop tests (tests/node_peers.py).
// Listens on 127.0.0.1 port 0 and prints {"port": N} as its first stdout line.
// Echoes text as text and binary as binary. Options (argv, all optional):
//   --close-after N      close each connection after echoing N messages
//   --close-code C       ...with this close code (default 1000)
//   --close-reason R     ...and this reason (default "")
//   --subprotocol NAME   select NAME when the client offers it
// Exits when its stdin closes, so it never outlives the test process.
'use strict';
const { WebSocketServer } = require('ws');

const opts = { closeAfter: 0, closeCode: 1000, closeReason: '', subprotocol: null };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const [name, value] = [argv[i], argv[i + 1]];
  if (name === '--close-after') opts.closeAfter = Number(value);
  else if (name === '--close-code') opts.closeCode = Number(value);
  else if (name === '--close-reason') opts.closeReason = value;
  else if (name === '--subprotocol') opts.subprotocol = value;
  else { console.error(`ws_server.js: unknown option ${name}`); process.exit(2); }
}

const server = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  maxPayload: 1 << 30,
  handleProtocols: (offered) => (opts.subprotocol && offered.has(opts.subprotocol)
    ? opts.subprotocol : false),
});

server.on('connection', (ws) => {
  let echoed = 0;
  ws.on('message', (data, isBinary) => {
    if (opts.closeAfter && echoed >= opts.closeAfter) return;
    ws.send(data, { binary: isBinary });
    echoed += 1;
    if (opts.closeAfter && echoed === opts.closeAfter) ws.close(opts.closeCode, opts.closeReason);
  });
  ws.on('error', () => {});
});

server.on('listening', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});

process.stdin.on('data', () => {});
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
