// Package hint suggests what a user meant: the known word nearest to a
// misspelled one, for "did you mean" in error messages.
package hint

import "fmt"

// Closest returns the word of known nearest to word by edit distance
// (Levenshtein, case-sensitive), when it is close enough to be a likely
// misspelling: at most 2 edits, and fewer than half the word's letters.
// Ties go to the first in known. It is pure.
func Closest(word string, known []string) (string, bool) {
	best, bestD := "", -1
	for _, k := range known {
		d := distance(word, k)
		if bestD < 0 || d < bestD {
			best, bestD = k, d
		}
	}
	if bestD < 0 || bestD == 0 || bestD > 2 || 2*bestD >= len([]rune(word)) {
		return "", false
	}
	return best, true
}

// DidYouMean is "; did you mean X?" for the closest known word, or "".
func DidYouMean(word string, known []string) string {
	if k, ok := Closest(word, known); ok {
		return fmt.Sprintf("; did you mean %s?", k)
	}
	return ""
}

// distance is the Levenshtein distance between a and b, in runes.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
