// A Node `ws` client for wstool's interop tests (tests/node_peers.py).
// Usage: node ws_client.js URL EXPECT [SUBPROTOCOL...]
// Reads JSON lines from stdin ({"text": "..."} or {"binary": "<base64>"}),
// sends them once the connection is open, and writes one JSON line per event:
//   {"event":"open","protocol":"..."}
//   {"event":"message","text":"..."} / {"event":"message","binary":"<base64>"}
//   {"event":"close","code":N,"reason":"..."}   {"event":"error","message":"..."}
// After EXPECT received messages (0: none expected) it closes with 1000;
// otherwise it waits for the server to close.
'use strict';
const WebSocket = require('ws');

const [url, expectArg, ...protocols] = process.argv.slice(2);
const expect = Number(expectArg || '0');
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const outgoing = input.split('\n').filter((line) => line.length > 0).map((line) => JSON.parse(line));
  const ws = new WebSocket(url, protocols);
  let received = 0;
  ws.on('open', () => {
    emit({ event: 'open', protocol: ws.protocol });
    for (const m of outgoing) {
      if ('binary' in m) ws.send(Buffer.from(m.binary, 'base64'), { binary: true });
      else ws.send(m.text);
    }
    if (expect === 0) ws.close(1000);
  });
  ws.on('message', (data, isBinary) => {
    if (isBinary) emit({ event: 'message', binary: Buffer.from(data).toString('base64') });
    else emit({ event: 'message', text: data.toString('utf8') });
    received += 1;
    if (received === expect) ws.close(1000);
  });
  ws.on('close', (code, reason) => {
    emit({ event: 'close', code, reason: reason.toString('utf8') });
    process.exit(0);
  });
  ws.on('error', (err) => {
    emit({ event: 'error', message: String(err && err.message) });
  });
});
