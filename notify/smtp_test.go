package notify

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSMTP is a minimal SMTP server: EHLO, MAIL, RCPT, DATA, QUIT, no TLS
// and no auth; it keeps each message's DATA.
type fakeSMTP struct {
	ln   net.Listener
	mu   sync.Mutex
	data []string
	rcpt []string
	got  chan struct{}
}

func newFakeSMTP(t *testing.T) *fakeSMTP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSMTP{ln: ln, got: make(chan struct{}, 10)}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { f.serve(c) })
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return f
}

func (f *fakeSMTP) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	say := func(s string) { w.WriteString(s + "\r\n"); w.Flush() }
	say("220 fake ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250-fake")
			say("250 8BITMIME")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			say("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			f.mu.Lock()
			f.rcpt = append(f.rcpt, strings.TrimSpace(line[len("RCPT TO:"):]))
			f.mu.Unlock()
			say("250 ok")
		case cmd == "DATA":
			say("354 go ahead")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(strings.TrimPrefix(l, "."))
			}
			f.mu.Lock()
			f.data = append(f.data, b.String())
			f.mu.Unlock()
			f.got <- struct{}{}
			say("250 queued")
		case cmd == "RSET", cmd == "NOOP":
			say("250 ok")
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("502 not implemented")
		}
	}
}

// TestShoutrrrSMTP: the mail's subject is the title and its body the
// chat text, secrets masked; the URL's password never goes out.
func TestShoutrrrSMTP(t *testing.T) {
	f := newFakeSMTP(t)
	const pass = "smtpPassw0rdSecret"
	raw := "smtp://fleetd:" + pass + "@" + f.ln.Addr().String() + "/?from=fleetd@example.com&to=ops@example.com&auth=None&encryption=None&usestarttls=No"
	s := newTestShoutrrr(t, ShoutrrrConfig{URL: raw})
	if s.Name() != "smtp" {
		t.Errorf("name %q", s.Name())
	}
	deliver(t, s, raw, pass)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.data) != 1 || len(f.rcpt) != 1 || !strings.Contains(f.rcpt[0], "ops@example.com") {
		t.Fatalf("%d mails to %v", len(f.data), f.rcpt)
	}
	head, body, _ := strings.Cut(f.data[0], "\r\n\r\n")
	if !strings.Contains(head, "Subject: ❌ Rollout failed: app") {
		t.Errorf("headers:\n%s", head)
	}
	checkText(t, strings.ReplaceAll(body, "\r\n", "\n"), pass)
	if strings.Contains(head, pass) || strings.Contains(head, optionSecret) {
		t.Errorf("a secret in the headers:\n%s", head)
	}
}
