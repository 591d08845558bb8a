package notify

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports: notify is an adapter; it may use the domain (reconcile,
// drift, fleets) and redact, never another adapter.
func TestImports(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	fset := token.NewFileSet()
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			rest, ok := strings.CutPrefix(path, "github.com/fleetd/fleetd/")
			if !ok {
				continue
			}
			switch strings.SplitN(rest, "/", 2)[0] {
			case "reconcile", "drift", "fleets", "redact":
			default:
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
}
