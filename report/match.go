package report

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
)

// Matcher is one -match label matcher, e.g. namespace="games". Every
// query the report runs carries the matchers, so one report can cover one
// namespace or cluster when several share a Prometheus and their services
// share names.
type Matcher struct {
	Name, Op, Value string
	re              *regexp.Regexp // for =~ and !~
}

// ParseMatcher reads NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX.
// The value may be quoted as in PromQL ("games") or bare (games).
func ParseMatcher(s string) (Matcher, error) {
	i := strings.IndexAny(s, "=!")
	if i <= 0 {
		return Matcher{}, fmt.Errorf("match %q: want NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX", s)
	}
	m := Matcher{Name: strings.TrimSpace(s[:i])}
	rest := s[i:]
	for _, op := range []string{"!=", "=~", "!~", "="} {
		if strings.HasPrefix(rest, op) {
			m.Op, m.Value = op, strings.TrimSpace(rest[len(op):])
			break
		}
	}
	if m.Op == "" {
		return Matcher{}, fmt.Errorf("match %q: want NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX", s)
	}
	if !model.LegacyValidation.IsValidLabelName(m.Name) {
		return Matcher{}, fmt.Errorf("match %q: %q is not a label name", s, m.Name)
	}
	if strings.HasPrefix(m.Value, `"`) {
		v, err := strconv.Unquote(m.Value)
		if err != nil {
			return Matcher{}, fmt.Errorf("match %q: %w", s, err)
		}
		m.Value = v
	}
	if m.Op == "=~" || m.Op == "!~" {
		// Checked alone first, so an error quotes the user's regex, not
		// its anchored form.
		if _, err := regexp.Compile(m.Value); err != nil {
			return Matcher{}, fmt.Errorf("match %q: %w", s, err)
		}
		re, err := regexp.Compile("^(?s:" + m.Value + ")$") // anchored, as in PromQL
		if err != nil {
			return Matcher{}, fmt.Errorf("match %q: %w", s, err)
		}
		m.re = re
	}
	return m, nil
}

// String is the matcher in PromQL, its value quoted.
func (m Matcher) String() string { return m.Name + m.Op + strconv.Quote(m.Value) }

// Matches reports whether a series with labels ls is selected, with
// PromQL's rule that a missing label is the empty string.
func (m Matcher) Matches(ls model.LabelSet) bool {
	v := string(ls[model.LabelName(m.Name)])
	switch m.Op {
	case "=":
		return v == m.Value
	case "!=":
		return v != m.Value
	case "=~":
		return m.re.MatchString(v)
	default:
		return !m.re.MatchString(v)
	}
}

// matchList is the repeatable -match flag.
type matchList []Matcher

func (l *matchList) String() string {
	s := make([]string, len(*l))
	for i, m := range *l {
		s[i] = m.String()
	}
	return strings.Join(s, ",")
}

func (l *matchList) Set(s string) error {
	m, err := ParseMatcher(s)
	if err != nil {
		return err
	}
	*l = append(*l, m)
	return nil
}
