// node_echo.js: the Node.js echo server that `make bench` compares with.
//
// net.createServer(s => s.pipe(s)) behind the tutorial servers' interface:
// node node_echo.js [-a ADDR] [-p PORT] (0 = a free port) prints
// "listening on ADDR:PORT" when ready and exits 0 on SIGINT or SIGTERM.
'use strict';

const net = require('net');

let addr = '127.0.0.1';
let port = 5555;

function usage(message) {
  if (message) console.error(`node_echo: ${message}`);
  console.error('usage: node node_echo.js [-h] [-a addr] [-p port]\n' +
                '  -a addr  address to listen on (default 127.0.0.1)\n' +
                '  -p port  port to listen on, 0 for a free one (default 5555)');
  process.exit(message ? 2 : 0);
}

const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const value = args[i + 1];
  if (args[i] === '-h') {
    usage();
  } else if (args[i] === '-a' && net.isIP(value || '') !== 0) {
    addr = value;
  } else if (args[i] === '-p' && /^[0-9]+$/.test(value || '') &&
             Number(value) <= 65535) {
    port = Number(value);
  } else {
    usage(`bad argument: ${args.slice(i, i + 2).join(" ")}`);
  }
  i++;
}

// allowHalfOpen: a client's EOF ends the pipe, which ends our side only
// after everything read has been written back.
const server = net.createServer({ allowHalfOpen: true }, (socket) => {
  // A client that resets its connection must not take the server down.
  socket.on('error', () => socket.destroy());
  socket.pipe(socket);
});

server.on('error', (e) => {
  console.error(`node_echo: cannot listen on ${addr} port ${port}: ${e.message}`);
  process.exit(1);
});

server.listen({ host: addr, port, backlog: 4096 }, () => {
  const a = server.address();
  const host = a.family === 'IPv6' || a.family === 6 ? `[${a.address}]` : a.address;
  process.stdout.write(`listening on ${host}:${a.port}\n`);
});

process.on('SIGINT', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
