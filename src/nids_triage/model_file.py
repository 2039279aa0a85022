"""The triage model's file: barenet's pickle-free .npz with the triage parts in its metadata and extra arrays.

The first ensemble member is the file's network (its parameters and optimizer moments); the other members, the
novelty detector's and the burst detector's arrays sit beside it as extra arrays, and everything else (task,
encoder, temperature, thresholds, configuration, validation report) is JSON under ``metadata["nids_triage"]``.
barenet writes the file atomically and checksums every array; loading never executes code.

Version 2 added the burst detector (``burst`` entry, ``burst.*`` arrays). Version 1 files, from before it, load
without one and score as before (``TriageModel.burst`` is None, the model id unchanged); a version-1 reader
refuses version-2 files instead of dropping their burst signal silently.
"""
from __future__ import annotations

import barenet as bn

from .burst import BurstDetector
from .config import TrainConfig
from .features import FeatureEncoder
from .novelty import MahalanobisNovelty
from .policy import DeferralPolicy

MODEL_FORMAT = "nids_triage.TriageModel"
MODEL_VERSION = 2  # 2: the burst detector; 1: before it (still read)


def save_model(model, path) -> None:
    """Write ``model`` (a TriageModel) to ``path``."""
    meta = {"nids_triage": {
        "format": MODEL_FORMAT, "version": MODEL_VERSION, "task": model.task,
        "encoder": model.encoder.to_dict(), "temperature": model.temperature,
        "novelty": model.novelty.to_dict(), "policy": model.policy.to_dict(),
        "config": model.config.to_dict(), "report": model.report}}
    arrays = dict(model.novelty.arrays())
    if model.burst is not None:
        meta["nids_triage"]["burst"] = model.burst.to_dict()
        arrays.update(model.burst.arrays())
    states = []
    for i, net in enumerate(model.networks[1:], start=1):  # members share the architecture of the first
        arrays.update({f"member{i}/{k}": v for k, v in net.get_weights().items()})
        opt = net.optimizer.state_dict()  # so fine-tuning a reloaded model continues every member exactly
        arrays.update({f"member{i}/opt:{k}": v for k, v in opt["buffers"].items()})
        states.append({"step_count": opt["step_count"], "lr_scale": opt["lr_scale"],
                       "rng_state": net.rng.bit_generator.state})
    meta["nids_triage"]["members"] = len(model.networks)
    meta["nids_triage"]["member_states"] = states
    model.network.save(path, metadata=meta, arrays=arrays)


def load_model(path, model_class):
    """Read a ``model_class`` (TriageModel); a damaged or foreign file raises barenet's ModelFileError naming it."""
    net = bn.load(path)
    meta = net.metadata.get("nids_triage")
    if not meta or meta.get("format") != MODEL_FORMAT:
        raise bn.ModelFileError(f"{path}: a barenet model, but not an nids-triage model (no triage metadata)")
    if meta.get("version", 0) > MODEL_VERSION:
        raise bn.ModelFileError(f"{path}: triage model version {meta['version']} is newer than this nids-triage")
    try:
        return _from_parts(net, meta, model_class)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise bn.ModelFileError(f"{path}: the triage metadata is incomplete or damaged ({exc!r})") from None


def _from_parts(net, meta, model_class):
    cfg = dict(meta["config"])
    cfg["hidden"] = tuple(cfg["hidden"])
    networks = [net]
    for i, state in enumerate(meta.get("member_states", []), start=1):
        member = net.clone()
        prefix = f"member{i}/"
        mine = {k[len(prefix):]: v for k, v in net.extra_arrays.items() if k.startswith(prefix)}
        member.set_weights({k: v for k, v in mine.items() if not k.startswith("opt:")})
        member.optimizer.load_state_dict({"step_count": state["step_count"], "lr_scale": state["lr_scale"],
                                          "buffers": {k[4:]: v for k, v in mine.items() if k.startswith("opt:")}})
        member.rng.bit_generator.state = state["rng_state"]
        networks.append(member)
    if len(networks) != int(meta.get("members", 1)):
        raise ValueError(f"{meta.get('members')} members declared, {len(networks)} stored")
    histories = (meta.get("report") or {}).get("history") or []
    for member, history in zip(networks[1:], histories[1:]):  # the first network's came with its own manifest
        member.history_ = None if history is None else bn.History.from_dict(history)
    if "burst" in meta and meta.get("version", 0) < 2:  # only 6913362, a development commit, wrote these
        raise ValueError("a version-1 file with a burst detector from a development version: train the model again")
    burst = BurstDetector.from_dict(meta["burst"], net.extra_arrays) if "burst" in meta else None
    policy = DeferralPolicy.from_dict(meta["policy"])
    if policy.burst_threshold != (None if burst is None else burst.threshold_):
        raise ValueError(f"the policy's burst threshold {policy.burst_threshold} is not the burst detector's")
    return model_class(meta["task"], FeatureEncoder.from_dict(meta["encoder"]), networks, meta["temperature"],
                       MahalanobisNovelty.from_dict(meta["novelty"], net.extra_arrays), policy, TrainConfig(**cfg),
                       meta.get("report"), burst=burst)
