package review

import (
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/redact"
)

// redactorOf knows the secret values of every fleet on either side, so
// that a value of the base (an old secret) is masked as well as one of the
// head.
func redactorOf(hosts []HostRevisions) *redact.Redactor {
	var all []fleets.Fleet
	for _, hr := range hosts {
		all = append(append(all, hr.Base.Fleets...), hr.Head.Fleets...)
	}
	return redact.New(fleets.SecretValuesOf(all)...)
}

// redactReport passes every free text of a report through red: the
// commits' subjects, problems, reasons, warnings and field values. The
// text, Markdown and JSON renderings all render this report.
func redactReport(rv Report, red *redact.Redactor) Report {
	rv.Base.Subject, rv.Head.Subject = red.String(rv.Base.Subject), red.String(rv.Head.Subject)
	rv.Problems, rv.BaseProblems = redactProblems(rv.Problems, red), redactProblems(rv.BaseProblems, red)
	for i := range rv.Hosts {
		h := &rv.Hosts[i]
		for j := range h.Warnings {
			h.Warnings[j].Message = red.String(h.Warnings[j].Message)
		}
		for j := range h.Fleets {
			f := &h.Fleets[j]
			f.Reason, f.Updates = red.String(f.Reason), redactChanges(f.Updates, red)
			for k := range f.Services {
				s := &f.Services[k]
				s.Reason, s.Updates = red.String(s.Reason), redactChanges(s.Updates, red)
				if s.Recreate != nil {
					s.Recreate.Fields = redactChanges(s.Recreate.Fields, red)
					s.Recreate.Build = redactChanges(s.Recreate.Build, red)
				}
			}
		}
	}
	return rv
}

func redactProblems(ps []fleets.Problem, red *redact.Redactor) []fleets.Problem {
	out := make([]fleets.Problem, len(ps))
	for i, p := range ps {
		p.Message = red.String(p.Message)
		out[i] = p
	}
	return out
}

func redactChanges(cs []FieldChange, red *redact.Redactor) []FieldChange {
	for i := range cs {
		cs[i].From, cs[i].To = red.String(cs[i].From), red.String(cs[i].To)
	}
	return cs
}
