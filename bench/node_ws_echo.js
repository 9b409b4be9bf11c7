// Node's `ws` echo server for bench/bench_echo_server.py: node node_ws_echo.js PORT
// (NODE_PATH must hold `ws`). Echoes text as text, binary as binary; defaults otherwise.
'use strict';
const { WebSocketServer } = require('ws');
const server = new WebSocketServer({ host: '127.0.0.1', port: Number(process.argv[2]) });
server.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
