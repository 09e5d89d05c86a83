// Package aws holds the CloudFormation template that runs Brownout on AWS;
// the test validates it offline.
package aws

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// pseudo are CloudFormation's pseudo parameters, valid targets of !Ref.
var pseudo = map[string]bool{
	"AWS::AccountId": true, "AWS::NotificationARNs": true, "AWS::NoValue": true, "AWS::Partition": true,
	"AWS::Region": true, "AWS::StackId": true, "AWS::StackName": true, "AWS::URLSuffix": true,
}

// template is the parsed template: the root node and its sections.
type template struct {
	root       *yaml.Node
	parameters map[string]*yaml.Node
	resources  map[string]*yaml.Node
}

func load(t *testing.T) *template {
	t.Helper()
	b, err := os.ReadFile("brownout.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("parse: %v", err)
	}
	tp := &template{root: doc.Content[0], parameters: map[string]*yaml.Node{}, resources: map[string]*yaml.Node{}}
	if p := get(tp.root, "Parameters"); p != nil {
		for i := 0; i < len(p.Content); i += 2 {
			tp.parameters[p.Content[i].Value] = p.Content[i+1]
		}
	}
	r := get(tp.root, "Resources")
	if r == nil {
		t.Fatal("no Resources")
	}
	for i := 0; i < len(r.Content); i += 2 {
		tp.resources[r.Content[i].Value] = r.Content[i+1]
	}
	return tp
}

// get returns the value of key in mapping n, or nil.
func get(n *yaml.Node, path ...string) *yaml.Node {
	for _, k := range path {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
			}
		}
		n = next
	}
	return n
}

func (tp *template) resource(t *testing.T, name, typ string) *yaml.Node {
	t.Helper()
	r := tp.resources[name]
	if r == nil {
		t.Fatalf("resource %s missing", name)
	}
	if got := get(r, "Type"); got == nil || got.Value != typ {
		t.Fatalf("resource %s: type %v, want %s", name, got, typ)
	}
	return get(r, "Properties")
}

func num(t *testing.T, n *yaml.Node, what string) float64 {
	t.Helper()
	if n == nil || n.Kind != yaml.ScalarNode {
		t.Fatalf("%s missing", what)
	}
	v, err := strconv.ParseFloat(n.Value, 64)
	if err != nil {
		t.Fatalf("%s = %q, not a number", what, n.Value)
	}
	return v
}

// attribute returns the Value of the Key=key entry in a list of
// {Key, Value} attributes.
func attribute(n *yaml.Node, key string) *yaml.Node {
	if n == nil {
		return nil
	}
	for _, e := range n.Content {
		if k := get(e, "Key"); k != nil && k.Value == key {
			return get(e, "Value")
		}
	}
	return nil
}

var subRef = regexp.MustCompile(`\$\{([^}!][^}]*)\}`)

// TestReferencesResolve walks every node, short-form tags and long forms
// alike, and checks that each Ref names a parameter, a resource or a
// pseudo parameter, and each GetAtt (and each ${X.Y} in a Sub) a resource.
func TestReferencesResolve(t *testing.T) {
	tp := load(t)
	refs, atts, problems := check(tp)
	for _, p := range problems {
		t.Error(p)
	}
	if refs < 10 || atts < 5 {
		t.Fatalf("only %d Refs and %d GetAtts found: the walk is broken", refs, atts)
	}
}

// check returns how many Refs and GetAtts it saw and what does not resolve.
func check(tp *template) (refs, atts int, problems []string) {
	errorf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	ref := func(where, name string) {
		refs++
		if tp.parameters[name] == nil && tp.resources[name] == nil && !pseudo[name] {
			errorf("%s: Ref %q resolves to nothing", where, name)
		}
	}
	getAtt := func(where, res string) {
		atts++
		if tp.resources[res] == nil {
			errorf("%s: GetAtt on %q, which is not a resource", where, res)
		}
	}
	sub := func(where, s string, vars map[string]bool) {
		for _, m := range subRef.FindAllStringSubmatch(s, -1) {
			name := m[1]
			if vars[name] {
				continue
			}
			if res, _, ok := strings.Cut(name, "."); ok && !pseudo[name] {
				getAtt(where, res)
			} else {
				ref(where, name)
			}
		}
	}
	var walk func(where string, n *yaml.Node)
	walk = func(where string, n *yaml.Node) {
		switch n.Tag {
		case "!Ref":
			ref(where, n.Value)
		case "!GetAtt":
			switch n.Kind {
			case yaml.ScalarNode:
				res, _, ok := strings.Cut(n.Value, ".")
				if !ok {
					errorf("%s: !GetAtt %q lacks .Attribute", where, n.Value)
				}
				getAtt(where, res)
			case yaml.SequenceNode:
				getAtt(where, n.Content[0].Value)
			}
		case "!Sub":
			switch n.Kind {
			case yaml.ScalarNode:
				sub(where, n.Value, nil)
			case yaml.SequenceNode:
				vars := map[string]bool{}
				if len(n.Content) > 1 {
					for i := 0; i < len(n.Content[1].Content); i += 2 {
						vars[n.Content[1].Content[i].Value] = true
					}
				}
				sub(where, n.Content[0].Value, vars)
			}
		}
		if n.Kind == yaml.MappingNode {
			for i := 0; i < len(n.Content); i += 2 {
				k, v := n.Content[i].Value, n.Content[i+1]
				switch k {
				case "Ref":
					ref(where, v.Value)
				case "Fn::GetAtt":
					if v.Kind == yaml.SequenceNode {
						getAtt(where, v.Content[0].Value)
					} else {
						res, _, _ := strings.Cut(v.Value, ".")
						getAtt(where, res)
					}
				case "Fn::Sub":
					if v.Kind == yaml.ScalarNode {
						sub(where, v.Value, nil)
					}
				}
				walk(where+"."+k, v)
			}
			return
		}
		for _, c := range n.Content {
			walk(where, c)
		}
	}
	walk("template", tp.root)
	for name, r := range tp.resources {
		d := get(r, "DependsOn")
		if d == nil {
			continue
		}
		deps := d.Content
		if d.Kind == yaml.ScalarNode {
			deps = []*yaml.Node{d}
		}
		for _, dep := range deps {
			if tp.resources[dep.Value] == nil {
				errorf("%s: DependsOn %q is not a resource", name, dep.Value)
			}
		}
	}
	return refs, atts, problems
}

// TestSeedNumbers checks the numbers the deployment is built around.
func TestSeedNumbers(t *testing.T) {
	tp := load(t)
	tg := tp.resource(t, "TargetGroup", "AWS::ElasticLoadBalancingV2::TargetGroup")
	if p := get(tg, "HealthCheckPath"); p == nil || p.Value != "/readyz" {
		t.Errorf("target group health check path %v, want /readyz", p)
	}
	asg := tp.resource(t, "AutoScalingGroup", "AWS::AutoScaling::AutoScalingGroup")
	for k, want := range map[string]float64{"MinSize": 2, "MaxSize": 10, "DesiredCapacity": 3, "HealthCheckGracePeriod": 300} {
		if got := num(t, get(asg, k), k); got != want {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	if h := get(asg, "HealthCheckType"); h == nil || h.Value != "ELB" {
		t.Errorf("HealthCheckType %v, want ELB", h)
	}
	if tgs := get(asg, "TargetGroupARNs"); tgs == nil || len(tgs.Content) != 1 || tgs.Content[0].Tag != "!Ref" || tgs.Content[0].Value != "TargetGroup" {
		t.Error("the group does not register with TargetGroup")
	}
	pol := tp.resource(t, "CpuTargetTracking", "AWS::AutoScaling::ScalingPolicy")
	if get(pol, "PolicyType").Value != "TargetTrackingScaling" ||
		get(pol, "TargetTrackingConfiguration", "PredefinedMetricSpecification", "PredefinedMetricType").Value != "ASGAverageCPUUtilization" {
		t.Error("scaling policy is not target tracking on average CPU")
	}
	if got := num(t, get(pol, "TargetTrackingConfiguration", "TargetValue"), "TargetValue"); got != 70 {
		t.Errorf("CPU target %v, want 70", got)
	}
	db := tp.resource(t, "Database", "AWS::RDS::DBInstance")
	if e := get(db, "Engine"); e == nil || e.Value != "postgres" {
		t.Errorf("database engine %v, want postgres", e)
	}
	lb := tp.resource(t, "LoadBalancer", "AWS::ElasticLoadBalancingV2::LoadBalancer")
	idle := num(t, attribute(get(lb, "LoadBalancerAttributes"), "idle_timeout.timeout_seconds"), "idle timeout")
	const pingInterval = 15 // server websocket ping interval, seconds (docs/protocol.md)
	if idle <= pingInterval {
		t.Errorf("ALB idle timeout %v s is not above the %d s websocket ping interval", idle, pingInterval)
	}
	dereg := num(t, attribute(get(tg, "TargetGroupAttributes"), "deregistration_delay.timeout_seconds"), "deregistration delay")
	const drain = 5 // --drain default, seconds
	if dereg <= drain {
		t.Errorf("deregistration delay %v s is not above the %d s drain", dereg, drain)
	}
}

// TestBrokenReferenceIsCaught makes sure the check can fail: a Ref, a
// GetAtt and a Sub variable that resolve to nothing are all reported.
func TestBrokenReferenceIsCaught(t *testing.T) {
	src := "Parameters:\n  P: {Type: String}\nResources:\n  A:\n    Type: X\n    DependsOn: Gone\n    Properties:\n" +
		"      Ok: !Ref P\n      B: !Ref Nope\n      C: !Sub '${Missing.Arn} ${P}'\n      D: !GetAtt Absent.Arn\n      E: {Ref: AlsoNope}\n"
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	tp := &template{root: doc.Content[0], parameters: map[string]*yaml.Node{"P": {}}, resources: map[string]*yaml.Node{}}
	r := get(tp.root, "Resources")
	tp.resources["A"] = r.Content[1]
	_, _, problems := check(tp)
	got := strings.Join(problems, "\n")
	for _, want := range []string{`"Nope"`, `"Missing"`, `"Absent"`, `"AlsoNope"`, `"Gone"`} {
		if !strings.Contains(got, want) {
			t.Errorf("problem with %s not reported; got:\n%s", want, got)
		}
	}
	if strings.Contains(got, `"P"`) {
		t.Errorf("a valid Ref reported:\n%s", got)
	}
}
