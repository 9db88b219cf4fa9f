// docs/kubernetes/distlab-agents.yaml, parsed as Kubernetes reads it (YAML
// 1.1): an Indexed Job whose pods are distlab agents dialling the kernel with
// --connect env, its world size equal to the Job's completions, the token
// from a Secret mounted read-only with mode 0400 and named by --token-file,
// and a headless Service for the kernel's rendezvous. Not run on a cluster.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve, join } from "node:path";
import { parseAllDocuments } from "yaml";

const MANIFEST = resolve(__dirname, "../../docs/kubernetes/distlab-agents.yaml");

interface Manifest {
  kind: string;
  metadata: { name: string };
  spec: Record<string, any>;
}

function load(): Manifest[] {
  const documents = parseAllDocuments(readFileSync(MANIFEST, "utf8"), { version: "1.1" });
  for (const document of documents) assert.deepEqual(document.errors, [], `${MANIFEST}: YAML errors`);
  return documents.map((document) => document.toJS() as Manifest);
}

test("the manifest holds a headless Service and an Indexed Job that runs all its agents at once", () => {
  const manifests = load();
  assert.deepEqual(manifests.map((manifest) => manifest.kind), ["Service", "Job"]);
  const [service, job] = manifests as [Manifest, Manifest];
  assert.equal(service.spec.clusterIP, "None", "the Service is headless");
  assert.equal(job.spec.completionMode, "Indexed");
  assert.ok(Number.isInteger(job.spec.completions) && job.spec.completions >= 1, "completions is a count");
  assert.equal(job.spec.parallelism, job.spec.completions, "parallelism = completions: the kernel waits for every index at once");
  assert.equal(job.spec.template.spec.restartPolicy, "Never");
});

test("each agent dials the Service's rendezvous with --connect env and announces a world of the Job's completions", () => {
  const [service, job] = load() as [Manifest, Manifest];
  const [container] = job.spec.template.spec.containers;
  const argv: string[] = [...(container.command ?? []), ...(container.args ?? [])];
  assert.deepEqual(argv.slice(0, 4), ["distlab", "agent", "--connect", "env"]);
  const env = Object.fromEntries(container.env.map((variable: { name: string; value: string }) => [variable.name, variable.value]));
  assert.equal(Number(env.DISTLAB_WORLD_SIZE), job.spec.completions, "DISTLAB_WORLD_SIZE = completions");
  const [host, port] = String(env.DISTLAB_RENDEZVOUS).split(":");
  assert.ok(host!.startsWith(`${service.metadata.name}.`), `the rendezvous ${env.DISTLAB_RENDEZVOUS} is the Service's DNS name`);
  assert.ok(service.spec.ports.some((entry: { port: number }) => entry.port === Number(port)), "the Service exposes the rendezvous port");
  assert.ok(!Object.keys(env).some((name) => /TOKEN/i.test(name)), "no token in the environment");
});

test("the token comes from a Secret mounted read-only with mode 0400 and is the file --token-file names", () => {
  const [, job] = load() as [Manifest, Manifest];
  const pod = job.spec.template.spec;
  const [container] = pod.containers;
  const argv: string[] = [...(container.command ?? []), ...(container.args ?? [])];
  const tokenFile = argv[argv.indexOf("--token-file") + 1]!;
  const mount = container.volumeMounts.find((entry: { mountPath: string }) => tokenFile.startsWith(`${entry.mountPath}/`));
  assert.ok(mount, `a volume is mounted above ${tokenFile}`);
  assert.equal(mount.readOnly, true);
  const volume = pod.volumes.find((entry: { name: string }) => entry.name === mount.name);
  assert.ok(volume?.secret?.secretName, "the token volume is a Secret");
  assert.equal(volume.secret.defaultMode, 0o400, "mode 0400: the agent refuses a token file readable by group or others");
  const item = volume.secret.items.find((entry: { path: string }) => join(mount.mountPath, entry.path) === tokenFile);
  assert.ok(item, `the Secret's items put a file at ${tokenFile}`);
});
