package main_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// eslEvents are the text/event-plain messages of a recorded event socket stream,
// each with its own framing, cut by the Content-Length of each message.
func eslEvents(t *testing.T, raw []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(raw) > 0 {
		raw = bytes.TrimLeft(raw, "\n")
		head, rest, ok := bytes.Cut(raw, []byte("\n\n"))
		if !ok {
			break
		}
		n := 0
		for _, line := range strings.Split(string(head), "\n") {
			if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
				fmt.Sscan(v, &n)
			}
		}
		msg := raw[:len(head)+2+n]
		if bytes.Contains(head, []byte("Content-Type: text/event-plain")) {
			out = append(out, msg)
		}
		raw = rest[n:]
	}
	return out
}

// TestServeFreeSWITCH runs the binary with a FreeSWITCH PBX configured and a minimal
// event socket on 127.0.0.1 that plays a recorded inbound call: the call is in the
// API, as expected.json has it, and the PBX is listed as a connected FreeSWITCH.
func TestServeFreeSWITCH(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("../../../shared/fixtures/freeswitch", "01-inbound-answered", "esl.raw"))
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	events := eslEvents(t, raw)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		fmt.Fprint(c, "Content-Type: auth/request\n\n")
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				served <- nil
				return
			}
			if line = strings.TrimSpace(line); line == "" {
				continue
			}
			switch {
			case line == "auth labsecret":
				fmt.Fprint(c, "Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
			case strings.HasPrefix(line, "auth "):
				fmt.Fprint(c, "Content-Type: command/reply\nReply-Text: -ERR invalid\n\n")
			case strings.HasPrefix(line, "event "):
				fmt.Fprint(c, "Content-Type: command/reply\nReply-Text: +OK event listener enabled plain\n\n")
			case strings.HasPrefix(line, "api show "):
				body := `{"row_count":0}` + "\n"
				fmt.Fprintf(c, "Content-Type: api/response\nContent-Length: %d\n\n%s", len(body), body)
				if line == "api show calls as json" {
					for _, m := range events {
						c.Write(m)
					}
				}
			case strings.HasPrefix(line, "api "):
				body := "-ERR " + strings.TrimPrefix(line, "api ") + " Command not found!\n"
				fmt.Fprintf(c, "Content-Type: api/response\nContent-Length: %d\n\n%s", len(body), body)
			}
		}
	}()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "fs.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`pbx:
  - id: fs
    kind: freeswitch
    address: %s
    password: labsecret
    dialplan: {external_contexts: [public], internal_contexts: [default]}
`, ln.Addr())), 0o600)
	s := startServer(t, dir, freeAddr(t), "--config", cfg)
	type apiCall struct {
		Direction   string   `json:"direction"`
		State       string   `json:"state"`
		Customer    string   `json:"customer"`
		DID         string   `json:"did"`
		AnsweredBy  string   `json:"answered_by"`
		Rung        []string `json:"rung"`
		Disposition string   `json:"disposition"`
		TalkS       float64  `json:"talk_s"`
		ConnectedS  float64  `json:"connected_s"`
	}
	var list struct {
		Calls []apiCall `json:"calls"`
	}
	checkFor(t, 20*time.Second, func() error {
		if code := s.get("/api/v1/calls", s.key, &list); code != 200 {
			return fmt.Errorf("status %d", code)
		}
		if len(list.Calls) != 1 || list.Calls[0].State != "ended" {
			return fmt.Errorf("%d calls", len(list.Calls))
		}
		return nil
	})
	// expected.json of 01: answered by 2001 after ringing 1 s, 5 s of talk.
	c := list.Calls[0]
	if c.Direction != "in" || c.Customer != "+79161000001" || c.DID != "2001" || c.AnsweredBy != "2001" ||
		len(c.Rung) != 1 || c.Rung[0] != "2001" || c.Disposition != "answered" || math.Abs(c.TalkS-5) > 1 || math.Abs(c.ConnectedS-5) > 1 {
		t.Fatalf("call %+v\n%s", c, s.log())
	}
	var pbxs struct {
		PBX []struct {
			ID        string `json:"id"`
			Kind      string `json:"kind"`
			Connected bool   `json:"connected"`
		} `json:"pbx"`
	}
	if code := s.get("/api/v1/pbx", s.key, &pbxs); code != 200 || len(pbxs.PBX) != 1 || pbxs.PBX[0].Kind != "freeswitch" || !pbxs.PBX[0].Connected {
		t.Fatalf("GET /api/v1/pbx: %d %+v\n%s", code, pbxs, s.log())
	}
	// What the connector read of the PBX is counted, by PBX.
	resp, err := http.Get("http://" + s.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf(`callbridge_pbx_events_total{pbx="fs"} %d`, len(events)); !strings.Contains(string(metrics), want) {
		t.Errorf("/metrics lacks %s", want)
	}
	if strings.Contains(s.log(), "labsecret") {
		t.Fatal("the event socket password is in the log")
	}
	s.kill(syscall.SIGTERM)
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the event socket was not closed when callbridge stopped")
	}
}
