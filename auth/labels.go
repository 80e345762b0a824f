package auth

// MechanismLabels are the values MechanismLabel returns: every mechanism
// this package can run, and "other". Metrics use them so that a client
// cannot grow a label set by naming mechanisms that do not exist.
func MechanismLabels() []string {
	out := make([]string, 0, 2*len(hashes)+len(htBinding)+3)
	for _, h := range hashes {
		out = append(out, h.mech, h.mech+"-PLUS")
	}
	out = append(out, MechHTExpr, MechHTUniq, MechHTEndP, MechHTNone)
	return append(out, "PLAIN", "EXTERNAL", "other")
}

// MechanismLabel maps a mechanism name a client sent to a metric label: the
// name when this package implements it, else "other".
func MechanismLabel(mech string) string {
	switch mech {
	case "PLAIN", "EXTERNAL":
		return mech
	}
	if IsHTMechanism(mech) {
		return mech
	}
	for _, h := range hashes {
		if mech == h.mech || mech == h.mech+"-PLUS" {
			return mech
		}
	}
	return "other"
}
