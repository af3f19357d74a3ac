'use strict';
/**
 * WS-Security for the node `soap` package, done by wssignd: the signing key
 * stays in the HSM behind the daemon's Unix socket.
 *
 *   client.setSecurity(new WssigndSecurity({ verifyProfile: 'partner' }));
 *
 * - postProcess(xml) — soap's synchronous hook — has each request signed
 *   (POST /v1/soap/sign?profile=...). The call runs on a worker thread
 *   while this thread waits, like any in-process signer would.
 * - addOptions(options) gives each call's HTTP request an axios adapter
 *   that has the response verified (POST /v1/soap/verify?profile=...)
 *   before soap parses it; an invalid response fails the call.
 *
 * Refusals are WssigndError with the daemon's stable `code`. Envelopes are
 * never logged.
 */

const path = require('node:path');
const { Worker, MessageChannel, receiveMessageOnPort } = require('node:worker_threads');
const axios = require('axios');
const { DEFAULT_SOCKET, WssigndError, contentType, post } = require('./daemon');

const ours = Symbol('wssignd adapter');

class WssigndSecurity {
  /**
   * @param {object} [opts]
   * @param {string} [opts.socketPath] default $WSSIGN_SOCKET, else /run/wssignd/wssignd.sock
   * @param {?string} [opts.signProfile='default'] [profiles.NAME] for requests; null: unsigned
   * @param {?string} [opts.verifyProfile='default'] [verify.NAME] for responses; null: unchecked
   * @param {number} [opts.timeout=30000] milliseconds per daemon call
   */
  constructor({ socketPath, signProfile = 'default', verifyProfile = 'default', timeout = 30000 } = {}) {
    this.conn = { socketPath: socketPath || process.env.WSSIGN_SOCKET || DEFAULT_SOCKET, timeout };
    this.signProfile = signProfile;
    this.verifyProfile = verifyProfile;
    this.worker = null;
  }

  /** soap's hook for the finished request envelope: returns it signed. */
  postProcess(xml) {
    if (this.signProfile == null) return xml;
    return this.callSync('/v1/soap/sign', this.signProfile, xml);
  }

  /** soap's hook for each call's request options: verify the response. */
  addOptions(options) {
    if (this.verifyProfile == null) return;
    const inner = options.adapter && !options.adapter[ours]
      ? axios.getAdapter(options.adapter) : axios.getAdapter(axios.defaults.adapter);
    const adapter = async (config) => {
      if (config.responseType === 'stream') {
        throw new WssigndError('unsupported', 'wssignd: a streamed response cannot be verified; do not use the stream option');
      }
      const res = await inner(config);
      const body = Buffer.isBuffer(res.data) || res.data instanceof ArrayBuffer
        ? Buffer.from(res.data).toString('utf8') : String(res.data);
      await this.verify(body);
      return res;
    };
    adapter[ours] = true;
    options.adapter = adapter;
  }

  /** Resolves with the verdict when xml verifies, else rejects with a WssigndError. */
  async verify(xml) {
    const verdict = JSON.parse(await post(this.conn, '/v1/soap/verify', this.verifyProfile, xml));
    if (verdict.valid !== true) {
      const code = verdict.code || 'invalid';
      throw new WssigndError(code, `response signature refused: ${verdict.detail || ''} (${code})`, { status: 200, verdict });
    }
    return verdict;
  }

  /** Stops the signing worker (it never keeps the process alive anyway). */
  close() {
    if (this.worker) this.worker.terminate();
    this.worker = null;
  }

  callSync(route, profile, body) {
    if (!this.worker) {
      const worker = new Worker(path.join(__dirname, 'sign-worker.js'));
      worker.unref();
      // A worker that died is replaced at the next call; a call waiting on
      // it ends with "unreachable" at its timeout.
      worker.on('error', () => { if (this.worker === worker) this.worker = null; });
      worker.on('exit', () => { if (this.worker === worker) this.worker = null; });
      this.worker = worker;
    }
    const flag = new Int32Array(new SharedArrayBuffer(4));
    const { port1, port2 } = new MessageChannel();
    try {
      this.worker.postMessage({ flag, port: port2, conn: this.conn, route, profile, body }, [port2]);
      if (Atomics.wait(flag, 0, 0, this.conn.timeout + 5000) === 'timed-out') {
        throw new WssigndError('unreachable', `wssignd at ${this.conn.socketPath}: no answer`);
      }
      const { out, error } = receiveMessageOnPort(port1).message;
      if (error) throw new WssigndError(error.code, error.message, { status: error.status, problem: error.problem });
      return out;
    } finally {
      port1.close();
    }
  }
}

module.exports = { WssigndSecurity, WssigndError, contentType };
