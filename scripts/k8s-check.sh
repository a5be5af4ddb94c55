#!/usr/bin/env bash
# make k8s-check: renders the Kustomize overlays (deploy/k8s/overlays/*) and
# validates every manifest offline against the Kubernetes schemas
# (kubernetes-validate from PyPI, which bundles them, in a venv of its own),
# then checks what every service must have (probes, limits, security
# context, Service, ConfigMap, PodDisruptionBudget, NetworkPolicy, and an
# autoscaler in production).
#   K8S_VERSIONS="1.29.0 1.37.0"   the versions validated against
source "$(dirname "$0")/lib.sh"

K8S_VERSIONS="${K8S_VERSIONS:-1.29.0 1.37.0}"
VENV="$CARGO_TARGET_DIR/k8s-venv"
OUT="$CARGO_TARGET_DIR/k8s"
K8S="$ROOT/deploy/k8s"

if [ ! -x "$VENV/bin/kubernetes-validate" ]; then
  say "installing kubernetes-validate into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q kubernetes-validate==1.37.0
fi

# A renderer: kubectl's built-in kustomize, or kustomize itself.
render=()
if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
  render=(kubectl kustomize)
elif command -v kustomize >/dev/null 2>&1; then
  render=(kustomize build)
fi

rm -rf "$OUT" && mkdir -p "$OUT"
files=()
if [ ${#render[@]} -gt 0 ]; then
  for o in base overlays/development overlays/production; do
    f="$OUT/$(basename "$o").yaml"
    "${render[@]}" "$K8S/$o" >"$f" || die "kustomize could not render deploy/k8s/$o"
    files+=("$f")
  done
  say "rendered base, development and production with ${render[*]} (into $OUT)"
else
  # The base's files are whole manifests: they validate without rendering.
  echo "k8s-check: no kustomize here (kubectl kustomize or kustomize): validating the base's files, not the rendered overlays"
  while IFS= read -r f; do files+=("$f"); done < <(find "$K8S/base" -name '*.yaml' ! -name kustomization.yaml | sort)
fi

for v in $K8S_VERSIONS; do
  "$VENV/bin/kubernetes-validate" --strict --quiet -k "$v" "${files[@]}" \
    || die "the manifests do not validate against Kubernetes $v"
  say "valid against the Kubernetes $v schemas (strict)"
done

mode=files
[ ${#render[@]} -gt 0 ] && mode=rendered
"$VENV/bin/python" - "$mode" "${files[@]}" <<'PY'
import sys, yaml

SERVICES = ["authenticator", "safekeeper", "task", "user-directory", "access-rule",
            "accounting", "analytics", "notifier"]
problems = []

def check_deployment(path, d):
    name = d["metadata"]["name"]
    spec = d["spec"]["template"]["spec"]
    psc = spec.get("securityContext", {})
    if not psc.get("runAsNonRoot") or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{path}: {name}: the pod must run as non-root with seccomp RuntimeDefault")
    for c in spec["containers"]:
        sc = c.get("securityContext", {})
        if not sc.get("readOnlyRootFilesystem") or sc.get("allowPrivilegeEscalation") is not False \
                or "ALL" not in sc.get("capabilities", {}).get("drop", []):
            problems.append(f"{path}: {name}: read-only root, no privilege escalation, all capabilities dropped")
        r = c.get("resources", {})
        for k in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(r.get(k, {})):
                problems.append(f"{path}: {name}: resources.{k} needs cpu and memory")
        paths = {p: c.get(p, {}).get("httpGet", {}).get("path") for p in ("readinessProbe", "livenessProbe")}
        if paths != {"readinessProbe": "/readyz", "livenessProbe": "/healthz"}:
            problems.append(f"{path}: {name}: readiness on /readyz, liveness on /healthz ({paths})")

# Rendered: each file is one whole overlay. Otherwise: the base's files together.
mode, paths = sys.argv[1], sys.argv[2:]
groups = [(p, [p]) for p in paths] if mode == "rendered" else [("deploy/k8s/base", paths)]
for path, members in groups:
    docs = [d for m in members for d in yaml.safe_load_all(open(m)) if d]
    seen = {}
    for d in docs:
        seen.setdefault(d["kind"], set()).add(d["metadata"]["name"].rsplit("-", 1)[0]
            if d["kind"] == "Secret" else d["metadata"]["name"])
        if d["kind"] == "Deployment":
            check_deployment(path, d)
    want = ["Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "NetworkPolicy"]
    if path.endswith("production.yaml"):
        want.append("HorizontalPodAutoscaler")
    for s in SERVICES:
        for kind in want:
            if s not in seen.get(kind, set()):
                problems.append(f"{path}: no {kind} {s}")
    # One port per service: the ConfigMap's PORT, the container's, the
    # Service's, and the one its NetworkPolicy lets in.
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    for s in SERVICES:
        dep, svc = by.get(("Deployment", s)), by.get(("Service", s))
        cm, np = by.get(("ConfigMap", s)), by.get(("NetworkPolicy", s))
        if not (dep and svc and cm and np):
            continue
        ports = {
            "ConfigMap PORT": {int(cm.get("data", {}).get("PORT", 0))},
            "containerPort": {p["containerPort"] for c in dep["spec"]["template"]["spec"]["containers"]
                              for p in c.get("ports", [])},
            "Service port": {p["port"] for p in svc["spec"]["ports"]},
            "NetworkPolicy ingress": {p["port"] for r in np["spec"].get("ingress", [])
                                      for p in r.get("ports", [])},
        }
        if len({frozenset(v) for v in ports.values()}) != 1:
            problems.append(f"{path}: {s}: the ports disagree ({ports})")
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
print("  every service: probes /healthz and /readyz, requests and limits, non-root, read-only root,")
print("  no capabilities, seccomp RuntimeDefault; Service, ConfigMap, PodDisruptionBudget,")
print("  NetworkPolicy (and a HorizontalPodAutoscaler in production), one port throughout")
PY
say "k8s-check passed"
