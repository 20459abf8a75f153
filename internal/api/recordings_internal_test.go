package api

import (
	"testing"
	"time"
)

func TestRecordingLinkExpires(t *testing.T) {
	s := &server{linkKey: []byte("0123456789abcdef0123456789abcdef")}
	now := time.Now()
	tok := s.signLink("default", "call-1", now.Add(time.Minute))
	if tenant, id, ok := s.checkLink(tok, now); !ok || tenant != "default" || id != "call-1" {
		t.Fatalf("fresh link: %q %q %v", tenant, id, ok)
	}
	if _, _, ok := s.checkLink(tok, now.Add(2*time.Minute)); ok {
		t.Fatal("an expired link still works")
	}
	other := &server{linkKey: []byte("another secret, another node....")}
	if _, _, ok := other.checkLink(tok, now); ok {
		t.Fatal("a link signed with another secret works")
	}
	for _, bad := range []string{"", ".", "abc", "abc.def", tok + "x", "x" + tok} {
		if _, _, ok := s.checkLink(bad, now); ok {
			t.Errorf("token %q accepted", bad)
		}
	}
}
