package asterisk

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/md5"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"callbridge/internal/asterisk/ami"
)

// fakeAMI is a scripted Asterisk Manager Interface on 127.0.0.1: it greets, checks
// logins (plain and MD5), answers Ping, and lets a test answer other actions and
// push raw bytes (recorded traffic) to the client.
type fakeAMI struct {
	t      *testing.T
	ln     net.Listener
	user   string
	secret string
	banner string

	mu      sync.Mutex
	conns   []*fakeConn
	actions []*ami.Packet
	// answer handles actions the fake does not know; nil answers Success.
	answer func(c *fakeConn, p *ami.Packet)
	// silent, when set, makes the fake stop answering anything.
	silent bool

	accepted chan *fakeConn
	wg       sync.WaitGroup
}

// fakeConn is one client connection of the fake.
type fakeConn struct {
	c  net.Conn
	mu sync.Mutex
}

func (c *fakeConn) send(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.c.Write(b)
}

func (c *fakeConn) reply(p *ami.Packet, kv ...string) {
	out := []string{"Response", kv[1]}
	if id := p.Get("ActionID"); id != "" {
		out = append(out, "ActionID", id)
	}
	out = append(out, kv[2:]...)
	c.send([]byte(ami.NewPacket(out...).String()))
}

func newFakeAMI(t *testing.T) *fakeAMI {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveFakeAMI(t, ln)
}

// newFakeAMITLS is the fake behind TLS, with a certificate for 127.0.0.1 signed by
// itself; the returned pool trusts it.
func newFakeAMITLS(t *testing.T) (*fakeAMI, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fake asterisk"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	return serveFakeAMI(t, ln), pool
}

func serveFakeAMI(t *testing.T, ln net.Listener) *fakeAMI {
	t.Helper()
	f := &fakeAMI{t: t, ln: ln, user: "cti", secret: "s3cret", banner: "Asterisk Call Manager/11.0.0", accepted: make(chan *fakeConn, 16)}
	f.wg.Add(1)
	go f.serve()
	t.Cleanup(f.close)
	return f
}

func (f *fakeAMI) addr() string { return f.ln.Addr().String() }

func (f *fakeAMI) close() {
	f.ln.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		c.c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// dropAll closes every client connection, as a restarting Asterisk would.
func (f *fakeAMI) dropAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.c.Close()
	}
	f.conns = nil
}

func (f *fakeAMI) setSilent(v bool) {
	f.mu.Lock()
	f.silent = v
	f.mu.Unlock()
}

func (f *fakeAMI) received() []*ami.Packet {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*ami.Packet(nil), f.actions...)
}

func (f *fakeAMI) serve() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		fc := &fakeConn{c: c}
		f.mu.Lock()
		f.conns = append(f.conns, fc)
		f.mu.Unlock()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.session(fc)
		}()
	}
}

const challenge = "424242"

func (f *fakeAMI) session(c *fakeConn) {
	defer c.c.Close()
	f.mu.Lock()
	banner := f.banner
	f.mu.Unlock()
	c.send([]byte(banner + "\r\n"))
	rd := ami.NewReader(c.c)
	loggedIn := false
	for {
		p, err := rd.Next()
		if err != nil {
			return
		}
		p = p.Clone()
		f.mu.Lock()
		f.actions = append(f.actions, p)
		silent, answer := f.silent, f.answer
		f.mu.Unlock()
		if silent {
			continue
		}
		switch strings.ToLower(p.Get("Action")) {
		case "challenge":
			c.reply(p, "Response", "Success", "Challenge", challenge)
		case "login":
			ok := p.Get("Username") == f.user
			if strings.EqualFold(p.Get("AuthType"), "md5") {
				sum := md5.Sum([]byte(challenge + f.secret))
				ok = ok && p.Get("Key") == hex.EncodeToString(sum[:])
			} else {
				ok = ok && p.Get("Secret") == f.secret
			}
			if !ok {
				c.reply(p, "Response", "Error", "Message", "Authentication failed")
				return
			}
			loggedIn = true
			c.reply(p, "Response", "Success", "Message", "Authentication accepted")
			select {
			case f.accepted <- c:
			default:
			}
		case "ping":
			c.reply(p, "Response", "Success", "Ping", "Pong")
		case "logoff":
			c.reply(p, "Response", "Goodbye", "Message", "Thanks for all the fish.")
			return
		default:
			if !loggedIn {
				c.reply(p, "Response", "Error", "Message", "Permission denied")
				continue
			}
			if answer != nil {
				answer(c, p)
			} else {
				c.reply(p, "Response", "Success")
			}
		}
	}
}
