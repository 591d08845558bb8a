package source_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// source is an adapter: of fleetd's packages it may import only the domain
// model (fleets), never engine, notify, server or reconcile.
func TestImportsNoOtherAdapter(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, "github.com/fleetd/fleetd/") && path != "github.com/fleetd/fleetd/fleets" {
				t.Errorf("%s imports %s", name, path)
			}
			if path == "os/exec" {
				t.Errorf("%s imports os/exec: no git binary at run time", name)
			}
		}
	}
}
