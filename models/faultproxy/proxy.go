// Package faultproxy is a TCP proxy for fault tests: put it between the
// store and a MySQL/MariaDB server and "stop the database" for that store
// alone — every proxied connection closes and new ones are refused, as when
// the server process stops — while other tests keep using the same server.
// Only tests import it.
package faultproxy

import (
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"time"
)

// Proxy forwards connections from its own loopback address to a target.
type Proxy struct {
	target string
	addr   string

	mu      sync.Mutex
	ln      net.Listener // nil while stopped
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
	accepts int // connections accepted, over the proxy's life
}

// Start listens on a free loopback port and forwards to target (host:port).
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}}
	p.serve(ln)
	return p, nil
}

// Addr is where to connect instead of the target.
func (p *Proxy) Addr() string { return p.addr }

// Via rewrites a mysql:// URL (a --db value) to reach its server through the proxy.
func (p *Proxy) Via(dbURL string) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", err
	}
	u.Host = p.addr
	return u.String(), nil
}

// Accepted is how many connections the proxy has taken so far.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepts
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by Stop or Close
			}
			p.mu.Lock()
			if p.ln != ln { // stopped meanwhile
				p.mu.Unlock()
				c.Close()
				return
			}
			p.accepts++
			p.mu.Unlock()
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.forward(c)
			}()
		}
	}()
}

func (p *Proxy) forward(client net.Conn) {
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(client, server) {
		client.Close()
		server.Close()
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		dst.Close()
		src.Close()
		done <- struct{}{}
	}
	go pipe(server, client)
	go pipe(client, server)
	<-done
	<-done
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
}

// track registers a live pair, or reports false when the proxy has stopped.
func (p *Proxy) track(a, b net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return false
	}
	p.conns[a], p.conns[b] = struct{}{}, struct{}{}
	return true
}

// Stop is the database stopping: the listener closes (new connections are
// refused) and every proxied connection is closed in both directions, in
// the middle of whatever it was doing.
func (p *Proxy) Stop() {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for c := range conns {
		c.Close()
	}
}

// Resume is the database coming back: the proxy listens again on the same
// address. Binding the port again can fail for a moment after Stop; it is
// retried for up to 5 seconds.
func (p *Proxy) Resume() error {
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var ln net.Listener
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			p.serve(ln)
			return nil
		}
	}
	return errors.Join(errors.New("faultproxy: unable to listen again on "+p.addr), err)
}

// Close stops the proxy for good and waits for its goroutines.
func (p *Proxy) Close() {
	p.Stop()
	p.wg.Wait()
}
