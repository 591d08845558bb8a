package hint

import "testing"

func TestClosest(t *testing.T) {
	known := []string{"interval", "schedule", "windows", "url", "ref", "path"}
	for _, tc := range []struct {
		word, want string
		ok         bool
	}{
		{"intervall", "interval", true},
		{"shedule", "schedule", true},
		{"window", "windows", true},
		{"branch", "", false}, // nothing close
		{"ul", "", false},     // 1 edit of 2 letters: too far to guess
		{"interval", "", false},
	} {
		got, ok := Closest(tc.word, known)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Closest(%q) = %q, %v; want %q, %v", tc.word, got, ok, tc.want, tc.ok)
		}
	}
	if s := DidYouMean("intervall", known); s != "; did you mean interval?" {
		t.Errorf("DidYouMean = %q", s)
	}
	if d := distance("kitten", "sitting"); d != 3 {
		t.Errorf("distance = %d, want 3", d)
	}
}
