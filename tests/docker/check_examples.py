#!/usr/bin/env python3
"""Checks the CreateTrainingJob requests in docker/examples/ against the
constraints of the SageMaker API reference (CreateTrainingJob and the types
it nests: AlgorithmSpecification, MetricDefinition, Channel, S3DataSource,
OutputDataConfig, ResourceConfig, StoppingCondition, CheckpointConfig), what
sagerun needs of a job (key material in a `tls` channel, never in
hyperparameters or the environment; MetricDefinitions exactly as `sagerun
metrics definitions` prints them; spot training with checkpoints and
MaxWaitTimeInSeconds > MaxRuntimeInSeconds), and then applies the training
example's regexes to the log of a real (short) sagerun training job.
(The validation example's regexes are applied to a real 3-host `sagerun
validate` log by test_multihost.)

Usage: check_examples.py SAGERUN EXAMPLES_DIR WORK_DIR"""
import json
import os
import re
import shutil
import subprocess
import sys

NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
ROLE = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")
S3_URI = re.compile(r"^(https|s3)://([^/]+)/?(.*)$")
CHANNEL = re.compile(r"^[A-Za-z0-9\.\-_]+$")
PLAN_ARN = re.compile(r"^arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]+:[0-9]{12}:training-plan/.*$")
ENV_KEY = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
SECRET = re.compile(r"psk|secret|password|private|tls_key|key_material", re.I)
INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9\-]+\.[0-9]*x?large$")


class Problems(list):
    def need(self, ok, what):
        if not ok:
            self.append(what)


def check_request(req, p):
    p.need(isinstance(req.get("TrainingJobName"), str) and NAME.match(req["TrainingJobName"]),
           "TrainingJobName: 1-63 of [a-zA-Z0-9-], starting and ending alphanumeric")
    p.need(isinstance(req.get("RoleArn"), str) and 20 <= len(req["RoleArn"]) <= 2048 and ROLE.match(req["RoleArn"]),
           "RoleArn: an IAM role ARN (20-2048 characters)")
    algo = req.get("AlgorithmSpecification", {})
    p.need(0 < len(algo.get("TrainingImage", "")) <= 255, "AlgorithmSpecification.TrainingImage: 1-255 characters")
    p.need(algo.get("TrainingInputMode") in ("File", "Pipe", "FastFile"),
           "AlgorithmSpecification.TrainingInputMode: File, Pipe or FastFile")
    defs = algo.get("MetricDefinitions", [])
    p.need(len(defs) <= 40, f"MetricDefinitions: at most 40, has {len(defs)}")
    for d in defs:
        p.need(1 <= len(d.get("Name", "")) <= 255, f"MetricDefinitions: Name 1-255 characters: {d.get('Name')}")
        p.need(1 <= len(d.get("Regex", "")) <= 500, f"MetricDefinitions {d.get('Name')}: Regex 1-500 characters")
        try:
            if re.compile(d.get("Regex", "")).groups < 1:
                p.append(f"MetricDefinitions {d.get('Name')}: the regex needs a capture group (the value)")
        except re.error as e:
            p.append(f"MetricDefinitions {d.get('Name')}: regex does not compile: {e}")
    names = [d.get("Name") for d in defs]
    p.need(len(set(names)) == len(names), "MetricDefinitions: names must be unique")
    for field in ("ContainerEntrypoint", "ContainerArguments"):
        if field in algo:
            v = algo[field]
            p.need(isinstance(v, list) and 1 <= len(v) <= 100 and all(isinstance(a, str) and len(a) <= 256 for a in v),
                   f"AlgorithmSpecification.{field}: 1-100 strings of at most 256 characters")
    hp = req.get("HyperParameters", {})
    p.need(len(hp) <= 100, "HyperParameters: at most 100")
    for k, v in hp.items():
        p.need(isinstance(v, str) and len(k) <= 256 and len(v) <= 2500,
               f"HyperParameters.{k}: string values (key <= 256, value <= 2500 characters)")
    env = req.get("Environment", {})
    p.need(len(env) <= 100, "Environment: at most 100 entries")
    for k, v in env.items():
        p.need(ENV_KEY.match(k) and len(k) <= 512 and isinstance(v, str) and len(v) <= 512,
               f"Environment.{k}: name [a-zA-Z_][a-zA-Z0-9_]*, both at most 512 characters")
    p.need(env.get("SAGERUN_PREFLIGHT", "off") in ("off", "quick", "full"),
           "Environment.SAGERUN_PREFLIGHT: off, quick or full")
    channels = req.get("InputDataConfig", [])
    p.need(len(channels) <= 20, "InputDataConfig: at most 20 channels")
    for c in channels:
        name = c.get("ChannelName", "")
        p.need(1 <= len(name) <= 64 and CHANNEL.match(name), f"ChannelName {name!r}: 1-64 of [A-Za-z0-9.-_]")
        src = c.get("DataSource", {}).get("S3DataSource", {})
        p.need(src.get("S3DataType") in ("ManifestFile", "S3Prefix", "AugmentedManifestFile"),
               f"channel {name}: S3DataType")
        p.need(S3_URI.match(src.get("S3Uri", "")) and len(src["S3Uri"]) <= 1024, f"channel {name}: S3Uri")
        p.need(src.get("S3DataDistributionType", "FullyReplicated") in ("FullyReplicated", "ShardedByS3Key"),
               f"channel {name}: S3DataDistributionType")
        p.need(c.get("InputMode", "File") in ("File", "Pipe", "FastFile"), f"channel {name}: InputMode")
    out = req.get("OutputDataConfig", {})
    p.need(S3_URI.match(out.get("S3OutputPath", "")) and len(out["S3OutputPath"]) <= 1024,
           "OutputDataConfig.S3OutputPath: an S3 URI (required)")
    res = req.get("ResourceConfig", {})
    p.need(INSTANCE_TYPE.match(res.get("InstanceType", "")), "ResourceConfig.InstanceType")
    p.need(isinstance(res.get("InstanceCount"), int) and res["InstanceCount"] >= 1, "ResourceConfig.InstanceCount >= 1")
    p.need(isinstance(res.get("VolumeSizeInGB"), int) and res["VolumeSizeInGB"] >= 1, "ResourceConfig.VolumeSizeInGB >= 1")
    if "TrainingPlanArn" in res:
        p.need(PLAN_ARN.match(res["TrainingPlanArn"]) and len(res["TrainingPlanArn"]) <= 2048,
               "ResourceConfig.TrainingPlanArn: a training-plan ARN")
    stop = req.get("StoppingCondition", {})
    p.need(isinstance(stop.get("MaxRuntimeInSeconds"), int) and stop["MaxRuntimeInSeconds"] >= 1,
           "StoppingCondition.MaxRuntimeInSeconds >= 1")
    if req.get("EnableManagedSpotTraining"):
        p.need(stop.get("MaxWaitTimeInSeconds", 0) > stop.get("MaxRuntimeInSeconds", 0),
               "managed spot: MaxWaitTimeInSeconds must exceed MaxRuntimeInSeconds (time to wait for capacity)")
        p.need("CheckpointConfig" in req, "managed spot: CheckpointConfig, so an interrupted job resumes")
        p.need("TrainingPlanArn" not in res, "managed spot does not run on a training plan's reserved capacity")
    if "CheckpointConfig" in req:
        ck = req["CheckpointConfig"]
        p.need(S3_URI.match(ck.get("S3Uri", "")) and len(ck["S3Uri"]) <= 1024, "CheckpointConfig.S3Uri")
        p.need(ck.get("LocalPath", "/opt/ml/checkpoints") == "/opt/ml/checkpoints",
               "CheckpointConfig.LocalPath: /opt/ml/checkpoints, where sagerun writes them")
    if req.get("EnableInterContainerTrafficEncryption"):
        p.need(any(c.get("ChannelName") == "tls" for c in channels),
               "encryption on: the job key must arrive in a `tls` channel (sagerun fails closed without it)")
    for where, mapping in (("HyperParameters", hp), ("Environment", env)):
        for k, v in mapping.items():
            p.need(not SECRET.search(k) and not SECRET.search(v),
                   f"{where}.{k}: key material must not travel in {where} (it is shown in DescribeTrainingJob)")


def expected_definitions(sagerun, req):
    entry = req["AlgorithmSpecification"].get("ContainerEntrypoint", ["sagerun", "train"])
    args = ["metrics", "definitions"]
    if entry[:2] == ["sagerun", "validate"] or entry[:2] == ["sagerun", "bench"]:
        args += ["--bench", str(req["ResourceConfig"]["InstanceCount"])]
    return json.loads(subprocess.run([sagerun] + args, capture_output=True, text=True, check=True).stdout)


def real_training_log(sagerun, work):
    """A short real training job (sample job, 1 host, 2 ranks); its log."""
    subprocess.run([sagerun, "sample", "--out", work, "--hosts", "1"], check=True, capture_output=True)
    root = os.path.join(work, "algo-1")
    hp_path = os.path.join(root, "input/config/hyperparameters.json")
    hp = json.load(open(hp_path))
    hp.update({"max_steps": "40", "val_interval": "20", "log_interval": "10"})
    json.dump(hp, open(hp_path, "w"))
    log = os.path.join(work, "train.log")
    with open(log, "w") as f:
        subprocess.run([sagerun, "train", "--ml-root", root, "--nproc-per-host", "2"], stdout=f, stderr=subprocess.STDOUT,
                       check=True, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    return log


def main():
    sagerun, examples, work = sys.argv[1:4]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    failed = 0
    for name in sorted(os.listdir(examples)):
        if not name.endswith(".json"):
            continue
        path = os.path.join(examples, name)
        req = json.load(open(path))
        p = Problems()
        check_request(req, p)
        if req["AlgorithmSpecification"].get("MetricDefinitions") != expected_definitions(sagerun, req):
            p.append("MetricDefinitions differ from what `sagerun metrics definitions` prints for this job")
        if "ContainerEntrypoint" not in req["AlgorithmSpecification"]:
            log = real_training_log(sagerun, os.path.join(work, name[:-5]))
            r = subprocess.run([sagerun, "metrics", "check", "--definitions", path, log], capture_output=True, text=True)
            if r.returncode != 0:
                p.append(f"its regexes do not all match a real sagerun training log:\n{r.stdout}{r.stderr}")
        for problem in p:
            print(f"{path}: {problem}", file=sys.stderr)
        if not p:
            print(f"{path}: valid ({len(req['AlgorithmSpecification'].get('MetricDefinitions', []))} metric definitions)")
        failed += bool(p)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
