#!/usr/bin/python3
"""The SOAP service the adapter tests call: a spyne Greeter on 127.0.0.1.

Its WS-Security is done by wssignd: every request is checked through
/v1/soap/verify (profile VERIFY_PROFILE) before spyne sees it, and every
response is signed through /v1/soap/sign (profile SIGN_PROFILE). A request
without a valid signature gets a SOAP Fault naming the verdict's code. With
"tamper" the service alters each response after signing it, so that clients
can show they refuse it.

Usage: service.py SOCKET VERIFY_PROFILE SIGN_PROFILE [tamper]; prints
"port N" once it listens. Envelopes are never logged.
"""
import http.client
import io
import json
import socket
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

from spyne import Application, ServiceBase, Unicode, rpc
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication


class Greeter(ServiceBase):
    @rpc(Unicode, _returns=Unicode)
    def greet(ctx, name):
        return "Hello, %s; signed by %s" % (name, ctx.transport.req_env["wssignd.signer"])


class _Unix(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def daemon(sock, path, body):
    conn = _Unix(sock)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "text/xml; charset=utf-8"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def fault(code):
    return ('<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
            '<soapenv:Fault><faultcode>soapenv:Client</faultcode><faultstring>WS-Security: %s</faultstring>'
            '</soapenv:Fault></soapenv:Body></soapenv:Envelope>' % code).encode()


def wssecurity(app, sock, verify_profile, sign_profile, tamper):
    def middleware(environ, start_response):
        if environ["REQUEST_METHOD"] != "POST":
            return app(environ, start_response)  # the WSDL
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        status, out = daemon(sock, "/v1/soap/verify?profile=" + verify_profile, body)
        verdict = json.loads(out)
        if status != 200 or not verdict.get("valid"):
            start_response("500 Internal Server Error", [("Content-Type", "text/xml; charset=utf-8")])
            return [fault(verdict.get("code", "error"))]
        environ["wssignd.signer"] = verdict["signer"]["subject"]
        environ["wsgi.input"] = io.BytesIO(body)
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers

        response = b"".join(app(environ, capture))
        status, signed = daemon(sock, "/v1/soap/sign?profile=" + sign_profile, response)
        if status != 200:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"signing failed"]
        if tamper:
            signed = signed.replace(b"Hello, ", b"Howdy, ", 1)
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"], headers + [("Content-Length", str(len(signed)))])
        return [signed]
    return middleware


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def main():
    sock, verify_profile, sign_profile = sys.argv[1:4]
    tamper = sys.argv[4:] == ["tamper"]
    app = Application([Greeter], "urn:wssignd:test:greeter",
                      in_protocol=Soap11(validator="lxml"), out_protocol=Soap11())
    server = make_server("127.0.0.1", 0, wssecurity(WsgiApplication(app), sock, verify_profile, sign_profile, tamper),
                         handler_class=QuietHandler)
    print("port", server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
