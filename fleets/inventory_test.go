package fleets

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseInventory(t *testing.T) {
	inv, err := ParseInventory("inv.yaml", []byte(`
hosts:
  - name: web-2
    labels: {role: web, zone: b}
  - name: db-1
    labels:
      role: db
  - name: edge
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Inventory{Hosts: []Host{
		{Name: "db-1", Labels: map[string]string{"role": "db"}},
		{Name: "edge"},
		{Name: "web-2", Labels: map[string]string{"role": "web", "zone": "b"}},
	}}
	if !reflect.DeepEqual(inv, want) {
		t.Errorf("got %+v\nwant %+v", inv, want)
	}
	if h, ok := inv.Host("web-2"); !ok || h.Labels["zone"] != "b" {
		t.Errorf("Host(web-2) = %+v, %v", h, ok)
	}
}

func TestParseInventoryErrors(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       []string // one substring per problem, in order
	}{
		{"empty", ``, []string{"inv.yaml: empty inventory"}},
		{"syntax", "hosts: [\n", []string{"inv.yaml:1: did not find expected node content"}},
		{"not a map", "- a\n", []string{"inv.yaml:1: want a mapping with a hosts key"}},
		{"unknown top key", "host:\n  - name: a\n", []string{"inv.yaml:1: host: unknown key (want hosts)"}},
		{"hosts not a list", "hosts: {a: b}\n", []string{"inv.yaml:1: hosts: want a list of hosts"}},
		{"unknown host key", "hosts:\n  - name: a\n    label: {x: y}\n", []string{"inv.yaml:3: hosts[0].label: unknown key (want name or labels)"}},
		{"no name", "hosts:\n  - labels: {x: y}\n", []string{"inv.yaml:2: hosts[0].name: missing"}},
		{"empty name", "hosts:\n  - name: \"\"\n", []string{"inv.yaml:2: hosts[0].name: want a non-empty host name"}},
		{"labels list", "hosts:\n  - name: a\n    labels: [x]\n", []string{"inv.yaml:3: hosts[0].labels: want a mapping"}},
		{"label value map", "hosts:\n  - name: a\n    labels: {x: {y: z}}\n", []string{"inv.yaml:3: hosts[0].labels.x: want a string value"}},
		{"duplicate", "hosts:\n  - name: a\n  - name: b\n  - name: a\n", []string{"inv.yaml:4: hosts[2].name: host \"a\" is listed twice (also on line 2)"}},
		{"two problems", "hosts:\n  - name: a\n    lables: {}\n  - nam: b\n", []string{
			"inv.yaml:3: hosts[0].lables: unknown key", "inv.yaml:4: hosts[1].nam: unknown key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseInventory("inv.yaml", []byte(tc.data))
			pl, ok := err.(ProblemList)
			if !ok {
				t.Fatalf("err = %v (%T), want a ProblemList", err, err)
			}
			if len(pl) != len(tc.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(pl), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.Contains(pl[i].String(), w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, pl[i].String(), w)
				}
			}
		})
	}
}
