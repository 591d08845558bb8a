package source

import (
	"errors"
	"strings"
	"testing"
)

func TestLimitsAdmit(t *testing.T) {
	l := Limits{MaxFileSize: 10, MaxFiles: 3, MaxTotalSize: 25}
	for _, tc := range []struct {
		name string
		had  tally
		size int64
		want string // "" admitted, else a substring of the error
	}{
		{"small", tally{}, 5, ""},
		{"at the file limit", tally{}, 10, ""},
		{"over the file limit", tally{}, 11, "big: 11 bytes, over source.limits.max_file_size (10)"},
		{"the last file allowed", tally{files: 2, bytes: 10}, 5, ""},
		{"one file too many", tally{files: 3, bytes: 10}, 1, "big: more than source.limits.max_files (3) files"},
		{"at the total", tally{files: 1, bytes: 15}, 10, ""},
		{"over the total", tally{files: 1, bytes: 16}, 10, "big: the tree reaches 26 bytes, over source.limits.max_total_size (25)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := l.admit(tc.had, "big", tc.size)
			if tc.want == "" {
				if err != nil || got.files != tc.had.files+1 || got.bytes != tc.had.bytes+tc.size {
					t.Fatalf("admit = %+v, %v; want admitted", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrTooLarge) {
				t.Fatalf("admit = %v, want ErrTooLarge with %q", err, tc.want)
			}
		})
	}
}

func TestLimitsDefaultsAndValidate(t *testing.T) {
	if got := (Limits{MaxFiles: 7}).withDefaults(); got != (Limits{MaxFileSize: 64 << 20, MaxFiles: 7, MaxTotalSize: 1 << 30}) {
		t.Errorf("withDefaults = %+v", got)
	}
	for l, field := range map[Limits]string{
		{MaxFileSize: -1}:  "limits.max_file_size",
		{MaxFiles: -1}:     "limits.max_files",
		{MaxTotalSize: -1}: "limits.max_total_size",
	} {
		if err := l.validate(); err == nil || !strings.Contains(err.Error(), field) || !errors.Is(err, ErrConfig) {
			t.Errorf("validate(%+v) = %v, want ErrConfig naming %s", l, err, field)
		}
	}
	if err := (Limits{}).validate(); err != nil {
		t.Errorf("validate(zero) = %v", err)
	}
}

func TestIsLFSPointer(t *testing.T) {
	pointer := "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n"
	for data, want := range map[string]bool{
		pointer:                             true,
		"version 1\n":                       false,
		"":                                  false,
		pointer + strings.Repeat("x", 1024): false, // pointers are small
		"# version https://git-lfs.github.com/spec/v1\n": false,
	} {
		if got := isLFSPointer([]byte(data)); got != want {
			t.Errorf("isLFSPointer(%.40q) = %v, want %v", data, got, want)
		}
	}
}
