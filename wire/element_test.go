package wire

import "testing"

func TestTruncateText(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"hello", 10, "hello"},
		{"hello", 5, "hello"},
		{"hello", 3, "hel"},
		{"aé", 2, "a"},  // é is two bytes: not split
		{"a€b", 3, "a"}, // € is three bytes
		{"a€b", 4, "a€"},
		{"😀😀", 5, "😀"}, // four-byte characters
		{"😀", 3, ""},
		{"", 0, ""},
		{"abc", 0, ""},
	} {
		if got := TruncateText(c.in, c.n); got != c.want {
			t.Errorf("TruncateText(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
