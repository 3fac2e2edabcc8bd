{{/*
CEL building blocks of the guardrail (templates/guardrail.yaml, docs/guardrail.md). CEL has no user
functions, so these helpers write the same parsing once per object (old/new) and per port.

Only the CEL standard library and the strings extension are used (split, trim, join; Kubernetes loads
cel-go ext.Strings version 2 from 1.29 on, see k8s.io/apiserver/pkg/cel/environment/base.go); the tests
evaluate the rendered expressions with cel-expr-python and its ExtStrings (tests/test_guardrail.py).
No optional types, no cel.bind, no two-variable comprehensions: they are not in every supported
Kubernetes version or not in the evaluator.
*/}}

{{- define "sg-churn-exporter.guardrail.attributesKey" -}}
service.beta.kubernetes.io/aws-load-balancer-target-group-attributes
{{- end }}

{{/*
The normalized preserve_client_ip.enabled values of one attribute string (a CEL string expression), in
order: the controller splits the annotation on "," and each pair on the first "=", trims, and the last
pair of a key wins (pkg/annotations/parser.go, ParseStringMapAnnotation, v2.13.0 and v3.5.0; v2.13.0
trims only the pair, v2.14.1+ key and value too: trimming both is the wider reading). A value
strconv.ParseBool accepts becomes 'true' or 'false'; anything else stays as written (the controller
rejects it; a change to or from it still counts as a change).
*/}}
{{- define "sg-churn-exporter.guardrail.values" -}}
{{- . }}.split(',').filter(kv, kv.split('=', 2)[0].trim() == 'preserve_client_ip.enabled').map(kv, kv.split('=', 2).size() == 2 ? kv.split('=', 2)[1].trim() : '').map(v, v in ['1', 't', 'T', 'TRUE', 'true', 'True'] ? 'true' : (v in ['0', 'f', 'F', 'FALSE', 'false', 'False'] ? 'false' : v))
{{- end }}

{{/*
"PORT/TARGETTYPE=VALUE" for each port of one side ("old" or "new"): VALUE is the effective
preserve_client_ip of the port's target group. The target type is part of the key: changing it replaces the
target group (buildTargetGroupName hashes it into the name, v2.13.0), which is not a flip of the attribute.
The port-specific annotation (<key>.<port>, v2.14.0+) wins when non-empty, then the Service-wide one, then
the target-type default (the head of variables.<side>Chain); see buildPortSpecificTargetGroupAttributes
and buildPreserveClientIPFlag in pkg/service/model_build_target_group.go (v3.5.0).
*/}}
{{- define "sg-churn-exporter.guardrail.effective" -}}
{{- $side := .side }}
{{- $object := ternary "oldObject" "object" (eq $side "old") }}
{{- $ann := printf "variables.%sAnnotations" $side }}
{{- $portKey := printf "'%s.' + string(p.port)" (include "sg-churn-exporter.guardrail.attributesKey" .root) }}
{{- $chain := printf "(variables.%sChain + (%s in %s ? %s : [])).filter(v, v != '')" $side $portKey $ann (include "sg-churn-exporter.guardrail.values" (printf "%s[%s]" $ann $portKey)) }}
{{- printf "(has(%s.spec.ports) ? %s.spec.ports : []).map(p, string(p.port) + '/' + variables.%sTargetType + '=' + %s[size(%s) - 1])" $object $object $side $chain $chain }}
{{- end }}

{{/*
The target type of a side, 'ip' or 'instance' (buildTargetType in pkg/service/model_build_target_group.go,
v2.13.0: the nlb-target-type annotation, else the controller's --default-target-type; the
aws-load-balancer-type nlb-ip means ip targets).
*/}}
{{- define "sg-churn-exporter.guardrail.targetType" -}}
{{- $ann := printf "variables.%sAnnotations" .side }}
{{- $tt := "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type" }}
{{- $lbType := "service.beta.kubernetes.io/aws-load-balancer-type" }}
{{- printf "(('%s' in %s ? %s['%s'] : '%s') == 'ip' || ('%s' in %s && %s['%s'] == 'nlb-ip')) ? 'ip' : 'instance'" $tt $ann $ann $tt .root.Values.guardrail.defaultTargetType $lbType $ann $ann $lbType }}
{{- end }}

{{/*
[default, Service-wide values...] of a side: the fallbacks of every port, in precedence order. The default
when no value is set: ip targets false, instance targets true (buildPreserveClientIPFlag, v2.13.0).
*/}}
{{- define "sg-churn-exporter.guardrail.chain" -}}
{{- $ann := printf "variables.%sAnnotations" .side }}
{{- $key := printf "'%s'" (include "sg-churn-exporter.guardrail.attributesKey" .root) }}
{{- printf "[variables.%sTargetType == 'ip' ? 'false' : 'true'] + (%s in %s ? %s : [])" .side $key $ann (include "sg-churn-exporter.guardrail.values" (printf "%s[%s]" $ann $key)) }}
{{- end }}
