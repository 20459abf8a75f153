package intern

import "testing"

func TestPool(t *testing.T) {
	p := New(2)
	a := p.Bytes([]byte("101"))
	if b := p.Bytes([]byte("101")); a != b || p.Len() != 1 {
		t.Fatalf("%q %q, %d pooled", a, b, p.Len())
	}
	if n := testing.AllocsPerRun(100, func() { p.Bytes([]byte("101")) }); n != 0 {
		t.Fatalf("%v allocations for a pooled string", n)
	}
	for _, s := range []string{"+79161000001", "a-context-name-longer-than-32-bytes!"} {
		if p.Bytes([]byte(s)) != s || p.Len() != 1 {
			t.Fatalf("%q pooled", s)
		}
	}
	p.Bytes([]byte("from-pstn"))
	p.Bytes([]byte("USER_BUSY")) // over the bound: handed out, not kept
	if p.Len() != 2 || p.Bytes(nil) != "" {
		t.Fatalf("%d pooled", p.Len())
	}
}
