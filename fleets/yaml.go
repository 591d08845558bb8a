package fleets

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"
)

// maxExpandedNodes bounds the size of a compose file's YAML tree once every
// alias is expanded. A "billion laughs" document is a few hundred bytes
// whose expansion is exponential; it is rejected by counting, on the parsed
// (unexpanded) node tree, before compose-go decodes and expands it. A real
// compose file of the 1 MiB size limit stays well under this.
const maxExpandedNodes = 250_000

// composeFile is one compose file read from the fleet's directory, with its
// YAML node tree kept to map a field path to a line.
type composeFile struct {
	rel  string // slash path relative to the repository path
	abs  string
	data []byte
	root *yaml.Node // the first document's content, nil when empty
}

var (
	yamlLine   = regexp.MustCompile(`line (\d+)`)
	yamlPrefix = regexp.MustCompile(`^yaml: (line \d+: )?`)
)

// parseYAML parses data into f.root. It returns the line of a syntax error
// when the parser names one.
func (f *composeFile) parseYAML() (line int, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(f.data))
	for first := true; ; first = false {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return 0, nil
		}
		if err != nil {
			return syntaxErrorLine(err), errors.New(yamlPrefix.ReplaceAllString(err.Error(), ""))
		}
		if err := checkExpansion(&doc); err != nil {
			return doc.Line, err
		}
		if first && len(doc.Content) > 0 {
			f.root = doc.Content[0]
		}
	}
}

func syntaxErrorLine(err error) int {
	m := yamlLine.FindStringSubmatch(err.Error())
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// checkExpansion rejects a document whose alias expansion exceeds
// maxExpandedNodes or refers to itself. It visits each node once: the
// expanded size of an anchored node is memoized.
func checkExpansion(doc *yaml.Node) error {
	memo := map[*yaml.Node]int{}
	if expandedSize(doc, memo) > maxExpandedNodes {
		return errors.New("document expands to too many nodes (YAML aliases)")
	}
	return nil
}

// expandedSize returns the node count of n with aliases expanded, saturating
// at maxExpandedNodes+1. A node under evaluation is marked -1 so that a
// self-referencing alias counts as too large rather than recursing forever.
func expandedSize(n *yaml.Node, memo map[*yaml.Node]int) int {
	const tooMany = maxExpandedNodes + 1
	if n == nil {
		return 0
	}
	if n.Kind == yaml.AliasNode {
		return expandedSize(n.Alias, memo)
	}
	if v, ok := memo[n]; ok {
		if v < 0 {
			return tooMany
		}
		return v
	}
	memo[n] = -1
	total := 1
	for _, c := range n.Content {
		total += expandedSize(c, memo)
		if total > tooMany {
			total = tooMany
			break
		}
	}
	memo[n] = total
	return total
}

// line returns the line of the deepest node along path (mapping keys and
// sequence indexes) and whether the whole path was found.
func (f *composeFile) line(path []string) (line int, exact bool) {
	n := f.root
	for _, seg := range path {
		next, l := child(n, seg)
		if next == nil {
			return line, false
		}
		n, line = next, l
	}
	return line, true
}

func child(n *yaml.Node, seg string) (*yaml.Node, int) {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil {
		return nil, 0
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == seg {
				return n.Content[i+1], n.Content[i].Line
			}
		}
	case yaml.SequenceNode:
		i, err := strconv.Atoi(seg)
		if err == nil && i >= 0 && i < len(n.Content) {
			return n.Content[i], n.Content[i].Line
		}
	}
	return nil, 0
}

// locate finds the file and line that define path. The last file that
// defines the whole path wins, as it does when Compose merges them; failing
// that, the deepest partial match.
func locate(files []*composeFile, path []string) (rel string, line int) {
	bestDepth := -1
	for i := len(files) - 1; i >= 0; i-- {
		l, exact := files[i].line(path)
		if exact {
			return files[i].rel, l
		}
		if d := partialDepth(files[i], path); d > bestDepth && l > 0 {
			bestDepth, rel, line = d, files[i].rel, l
		}
	}
	if rel == "" && len(files) > 0 {
		rel = files[0].rel
	}
	return rel, line
}

func partialDepth(f *composeFile, path []string) int {
	n := f.root
	for d, seg := range path {
		next, _ := child(n, seg)
		if next == nil {
			return d
		}
		n = next
	}
	return len(path)
}
