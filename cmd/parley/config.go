package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"

	"github.com/parley-xmpp/parley/server"
)

// Configuration sources, lowest precedence first:
//
//  1. server.DefaultConfig();
//  2. the YAML file: --config FILE; without --config the first of
//     defaultConfigPaths that exists (./parley.yaml, then
//     /etc/parley/parley.yaml); without either, defaults only;
//  3. environment variables PARLEY_<KEY_PATH>: the key path in capitals with
//     "_" for ".", e.g. PARLEY_LISTEN_C2S=":6222" for listen.c2s. Lists take
//     space- or comma-separated values (PARLEY_HOSTS="a.example b.example").
//     A variable that is set but empty sets the key to "" (or an empty list),
//     e.g. PARLEY_LISTEN_HTTP= disables that listener.
//
// Unknown keys, keys without a value and values of the wrong type are
// errors naming the full key path; then server.Config.Validate runs.

// envPrefix prefixes every environment override.
const envPrefix = "PARLEY_"

// defaultConfigPaths are tried in order when no --config is given.
var defaultConfigPaths = []string{"parley.yaml", "/etc/parley/parley.yaml"}

// configKey is one leaf key of server.Config.
type configKey struct {
	path  string // "listen.c2s"
	env   string // "PARLEY_LISTEN_C2S"
	index []int  // field index path in server.Config
	typ   reflect.Type
}

var durationType = reflect.TypeFor[time.Duration]()

// configKeys lists every leaf key of server.Config from its mapstructure
// tags, in declaration order. Nested structs are key groups.
func configKeys() []configKey {
	var keys []configKey
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if opts == "squash" {
				// An embedded struct whose keys are the section's own
				// (e.g. im.Limits in limits).
				walk(f.Type, prefix, append(append([]int(nil), index...), i))
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			path := prefix + name
			idx := append(append([]int(nil), index...), i)
			if f.Type.Kind() == reflect.Struct && f.Type != durationType {
				walk(f.Type, path+".", idx)
				continue
			}
			keys = append(keys, configKey{
				path:  path,
				env:   envPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_")),
				index: idx,
				typ:   f.Type,
			})
		}
	}
	walk(reflect.TypeFor[server.Config](), "", nil)
	return keys
}

// configGroups returns the key paths that are groups (nested structs).
func configGroups(keys []configKey) map[string]bool {
	groups := map[string]bool{}
	for _, k := range keys {
		parts := strings.Split(k.path, ".")
		for i := 1; i < len(parts); i++ {
			groups[strings.Join(parts[:i], ".")] = true
		}
	}
	return groups
}

// notConfigEnv are PARLEY_* variables that are not configuration keys
// but are read by the test suite and its scripts.
var notConfigEnv = []string{"PARLEY_INTEROP_REQUIRED", "PARLEY_UPDATE_SCREENSHOT", "PARLEY_FUZZ_TIME",
	"PARLEY_CRASH_ROUNDS", "PARLEY_SKIP_PEERS", "PARLEY_SKIP_BROWSER", "PARLEY_SKIP_S3RVER"}

// unknownEnv returns the PARLEY_* variables of environ that name no
// configuration key, each with the key it probably meant when one is
// close: a mistyped variable is otherwise ignored without a word.
func unknownEnv(environ []string) []string {
	keys := configKeys()
	known := make(map[string]bool, len(keys))
	for _, k := range keys {
		known[k.env] = true
	}
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix) || known[name] || strings.HasPrefix(name, envPrefix+"TEST_") || slices.Contains(notConfigEnv, name) {
			continue
		}
		best, dist := "", 3 // suggest only within two edits
		for _, k := range keys {
			if d := editDistance(name, k.env); d < dist {
				best, dist = k.env, d
			}
		}
		if best != "" {
			name += " (did you mean " + best + "?)"
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// resolveConfigPath returns the file loadConfig reads: path when given, else
// the first existing default path, else "" (defaults and environment only).
func resolveConfigPath(path string) (string, error) {
	if path != "" {
		return path, nil
	}
	for _, p := range defaultConfigPaths {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("config: %w", err)
		}
	}
	return "", nil
}

// loadConfig builds the configuration from defaults, the YAML file (path, or
// a default location when path is ""), and PARLEY_* environment variables,
// and validates it.
func loadConfig(path string) (server.Config, error) {
	file, err := resolveConfigPath(path)
	if err != nil {
		return server.Config{}, err
	}
	cfg, err := readConfig(file)
	if err != nil {
		return cfg, err
	}
	if err := cfg.Validate(); err != nil {
		var fromEnv []string
		for _, k := range configKeys() {
			if _, ok := os.LookupEnv(k.env); ok {
				fromEnv = append(fromEnv, k.env)
			}
		}
		if len(fromEnv) > 0 {
			return cfg, fmt.Errorf("%s%w\n  (environment overrides in effect: %s)", sourcePrefix(file), err, strings.Join(fromEnv, ", "))
		}
		return cfg, fmt.Errorf("%s%w", sourcePrefix(file), err)
	}
	return cfg, nil
}

// readConfig is loadConfig without the default file search and without
// Validate: defaults, then file (when not ""), then the environment.
func readConfig(file string) (server.Config, error) {
	cfg := server.DefaultConfig()
	keys := configKeys()
	v := viper.New()
	v.SetConfigType("yaml")
	v.AllowEmptyEnv(true)

	var errs []string
	bad := map[string]bool{} // keys with structural errors in the file
	if file != "" {
		if _, err := os.Stat(file); err != nil {
			return cfg, fmt.Errorf("config file: %w", err)
		}
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			return cfg, fmt.Errorf("config file %s: %w", file, err)
		}
		errs, bad = checkFileKeys(v, keys)
	}
	for _, k := range keys {
		if err := v.BindEnv(k.path, k.env); err != nil {
			return cfg, err
		}
	}
	rv := reflect.ValueOf(&cfg).Elem()
	for _, k := range keys {
		if bad[k.path] || !v.IsSet(k.path) {
			continue
		}
		env, fromEnv := os.LookupEnv(k.env)
		raw := v.Get(k.path)
		if fromEnv {
			raw = env
		}
		if err := setValue(rv.FieldByIndex(k.index), raw); err != nil {
			name := k.path
			if fromEnv {
				name += " (from " + k.env + ")"
			}
			var ie *indexError
			if errors.As(err, &ie) {
				name = fmt.Sprintf("%s[%d]", k.path, ie.index)
				err = ie.err
			}
			errs = append(errs, name+": "+err.Error())
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return cfg, fmt.Errorf("%sinvalid configuration:\n  %s", sourcePrefix(file), strings.Join(errs, "\n  "))
	}
	return cfg, nil
}

func sourcePrefix(file string) string {
	if file == "" {
		return ""
	}
	return "config file " + file + ": "
}

// checkFileKeys reports unknown keys, keys with no value and groups given
// a plain value, from the file alone (before environment variables are
// bound).
func checkFileKeys(v *viper.Viper, keys []configKey) (errs []string, reported map[string]bool) {
	leaves := map[string]configKey{}
	for _, k := range keys {
		leaves[k.path] = k
	}
	groups := configGroups(keys)
	reported = map[string]bool{}
	report := func(key, msg string) {
		if !reported[key] {
			reported[key] = true
			errs = append(errs, key+": "+msg)
		}
	}
	for _, key := range v.AllKeys() {
		parts := strings.Split(key, ".")
		for i := 1; i <= len(parts); i++ {
			p := strings.Join(parts[:i], ".")
			if k, ok := leaves[p]; ok {
				if i < len(parts) {
					// A mapping where a plain value belongs.
					report(p, "expected "+describeType(k.typ)+", got a mapping")
				} else if v.Get(p) == nil {
					report(p, "no value (write \"\" or [] for an empty value, or remove the key to keep the default)")
				}
				break
			}
			if groups[p] {
				if i == len(parts) {
					if val := v.Get(p); val != nil {
						if _, isMap := val.(map[string]any); !isMap {
							report(p, fmt.Sprintf("expected a mapping of keys, got %s", describeValue(val)))
						}
					}
				}
				continue
			}
			report(p, "unknown key")
			break
		}
	}
	return errs, reported
}

// indexError is a problem with one element of a list.
type indexError struct {
	index int
	err   error
}

func (e *indexError) Error() string { return fmt.Sprintf("[%d]: %v", e.index, e.err) }

// setValue stores raw (from YAML, or a string from the environment) into
// dst, converting it with errors that say what was expected.
func setValue(dst reflect.Value, raw any) error {
	t := dst.Type()
	fail := func() error {
		return fmt.Errorf("expected %s, got %s", describeType(t), describeValue(raw))
	}
	switch {
	case t == durationType:
		switch x := raw.(type) {
		case string:
			d, err := time.ParseDuration(strings.TrimSpace(x))
			if err != nil {
				return fail()
			}
			dst.SetInt(int64(d))
			return nil
		case int, int64, uint64:
			if reflect.ValueOf(x).Convert(reflect.TypeFor[int64]()).Int() == 0 {
				dst.SetInt(0)
				return nil
			}
			return fmt.Errorf("expected %s, got %s (add a unit: s, m or h)", describeType(t), describeValue(raw))
		}
		return fail()
	case t.Kind() == reflect.String:
		s, ok := raw.(string)
		if !ok {
			return fail()
		}
		dst.SetString(s)
		return nil
	case t.Kind() == reflect.Bool:
		switch x := raw.(type) {
		case bool:
			dst.SetBool(x)
			return nil
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(x))
			if err != nil {
				return fail()
			}
			dst.SetBool(b)
			return nil
		}
		return fail()
	case dst.CanInt():
		n, ok := toInt64(raw)
		if !ok || dst.OverflowInt(n) {
			return fail()
		}
		dst.SetInt(n)
		return nil
	case dst.CanUint():
		n, ok := toInt64(raw)
		if !ok || n < 0 || dst.OverflowUint(uint64(n)) {
			return fail()
		}
		dst.SetUint(uint64(n))
		return nil
	case dst.CanFloat():
		switch x := raw.(type) {
		case float64:
			dst.SetFloat(x)
			return nil
		case string:
			f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
			if err != nil {
				return fail()
			}
			dst.SetFloat(f)
			return nil
		}
		if n, ok := toInt64(raw); ok {
			dst.SetFloat(float64(n))
			return nil
		}
		return fail()
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		var items []string
		switch x := raw.(type) {
		case string:
			// Environment (or a lone YAML string): space or comma separated.
			items = strings.FieldsFunc(x, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
		case []any:
			for i, e := range x {
				s, ok := e.(string)
				if !ok {
					return &indexError{i, fmt.Errorf("expected a string, got %s", describeValue(e))}
				}
				items = append(items, s)
			}
		case []string:
			items = x
		default:
			return fail()
		}
		if len(items) == 0 {
			dst.SetZero()
			return nil
		}
		out := reflect.MakeSlice(t, len(items), len(items))
		for i, s := range items {
			out.Index(i).SetString(s)
		}
		dst.Set(out)
		return nil
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		var items []any
		switch x := raw.(type) {
		case string:
			// Environment: the list in JSON (a YAML flow list of mappings
			// with quoted keys is JSON too).
			if strings.TrimSpace(x) == "" {
				dst.SetZero()
				return nil
			}
			if err := json.Unmarshal([]byte(x), &items); err != nil {
				return fmt.Errorf("expected %s, written as JSON in the environment: %v", describeType(t), err)
			}
		case []any:
			items = x
		default:
			return fail()
		}
		out := reflect.MakeSlice(t, len(items), len(items))
		for i, it := range items {
			m, ok := it.(map[string]any)
			if !ok {
				return &indexError{i, fmt.Errorf("expected a mapping of keys, got %s", describeValue(it))}
			}
			if err := setStruct(out.Index(i), m); err != nil {
				return &indexError{i, err}
			}
		}
		dst.Set(out)
		return nil
	}
	return fmt.Errorf("unsupported configuration type %s", t)
}

// setStruct fills one element of a list of mappings (e.g. one of
// external_services.services) from its keys, by their mapstructure names;
// an unknown key is an error naming it.
func setStruct(dst reflect.Value, m map[string]any) error {
	t := dst.Type()
	fields := map[string]int{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("mapstructure"), ",")
		if name != "" && name != "-" && t.Field(i).IsExported() {
			fields[name] = i
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		i, ok := fields[strings.ToLower(k)]
		if !ok {
			return fmt.Errorf("%s: unknown key", k)
		}
		if err := setValue(dst.Field(i), m[k]); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

func toInt64(raw any) (int64, bool) {
	switch x := raw.(type) {
	case int:
		return int64(x), true
	case int64:
		return x, true
	case int32:
		return int64(x), true
	case uint64:
		if x > math.MaxInt64 {
			return 0, false
		}
		return int64(x), true
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return 0, false
		}
		return int64(x), true
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// describeType names what a key expects, for error messages.
func describeType(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration such as 30s, 5m or 1h"
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "an integer"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return "a list of strings"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		return "a list of mappings"
	}
	return t.String()
}

// describeValue shows a value found in the configuration.
func describeValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "no value"
	case string:
		return strconv.Quote(x)
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprint(v)
}
