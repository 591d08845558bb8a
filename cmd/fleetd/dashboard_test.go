package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestAgentAddrs(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "agents.txt")
	if err := os.WriteFile(good, []byte("# the web hosts\nhttp://web-1:9750/\n\nhttps://web-2:9750 # behind TLS\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(bad, []byte("http://web-1:9750\nweb-2:9750\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := agentAddrs([]string{"http://db-1:9750"}, good)
	if want := []string{"http://db-1:9750", "http://web-1:9750", "https://web-2:9750"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("agentAddrs = %v, %v; want %v", got, err, want)
	}
	for _, tc := range []struct {
		flags   []string
		file    string
		wantErr string
	}{
		{nil, "", "needs --agents"},
		{nil, bad, "bad.txt:2: web-2:9750: want an http:// or https:// URL"},
		{[]string{"http://u:s3cret-pw@web-1:9750"}, "", "no credentials in the URL"},
		{[]string{"http://web-1:9750/v1/status"}, "", "without a path"},
		{nil, filepath.Join(dir, "missing.txt"), "--agents-file: open"},
	} {
		if _, err := agentAddrs(tc.flags, tc.file); err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("agentAddrs(%v, %q) = %v, want an error with %q", tc.flags, tc.file, err, tc.wantErr)
		}
	}
}
