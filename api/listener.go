package api

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
)

// Listener wraps the daemon's listener so that the answers net/http writes
// by itself, before any handler runs (request headers over MaxHeaderBytes,
// a request line it cannot parse), are problem+json like every other
// answer, instead of plain text.
func Listener(ln net.Listener) net.Listener { return problemListener{ln} }

type problemListener struct{ net.Listener }

func (l problemListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &problemConn{Conn: c}, nil
}

// problemConn replaces net/http's plain-text error answers, each written
// in one Write, by their problem+json equivalent.
type problemConn struct{ net.Conn }

// Unwrap returns the connection underneath (PeerOf reads its credentials).
func (c *problemConn) Unwrap() net.Conn { return c.Conn }

// Problem codes of answers net/http gives before the handler.
const (
	CodeHeaderTooLarge = "header-too-large"
)

// netHTTPErrors maps net/http's own answers (Go 1.26 server.go: status
// line, errorHeaders, the status as body) to problem answers.
var netHTTPErrors = map[string][]byte{
	plainAnswer("431 Request Header Fields Too Large"): problemAnswer(http.StatusRequestHeaderFieldsTooLarge, CodeHeaderTooLarge, "the request headers exceed the limit"),
	plainAnswer("400 Bad Request"):                     problemAnswer(http.StatusBadRequest, CodeBadRequest, "the request could not be parsed"),
}

func plainAnswer(status string) string {
	return "HTTP/1.1 " + status + "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n" + status
}

func problemAnswer(status int, code, detail string) []byte {
	title := titles[code]
	if title == "" {
		title = http.StatusText(status)
	}
	body, _ := json.Marshal(&Problem{Type: ProblemTypeBase + code, Title: title, Status: status, Detail: detail, Code: code})
	body = append(body, '\n')
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 " + strconv.Itoa(status) + " " + http.StatusText(status) + "\r\n")
	b.WriteString("Content-Type: application/problem+json\r\nX-Content-Type-Options: nosniff\r\n")
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\nConnection: close\r\n\r\n")
	b.Write(body)
	return b.Bytes()
}

func (c *problemConn) Write(p []byte) (int, error) {
	if len(p) < 256 && bytes.HasPrefix(p, []byte("HTTP/1.1 4")) {
		if repl, ok := netHTTPErrors[string(p)]; ok {
			if _, err := c.Conn.Write(repl); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
	return c.Conn.Write(p)
}
