'use strict';
// The worker thread behind WssigndSecurity.postProcess: it makes the
// asynchronous call to wssignd while the caller waits on a shared flag, so
// that soap's synchronous hook can sign without a child process.

const { parentPort } = require('node:worker_threads');
const { post } = require('./daemon');

parentPort.on('message', ({ flag, port, conn, route, profile, body }) => {
  post(conn, route, profile, body).then(
    (out) => ({ out }),
    (e) => ({ error: { code: e.code, message: e.message, status: e.status, problem: e.problem } }),
  ).then((result) => {
    port.postMessage(result);
    port.close();
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
  });
});
