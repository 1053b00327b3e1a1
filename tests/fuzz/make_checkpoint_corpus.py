#!/usr/bin/python3
"""Regenerates the committed seed corpus tests/fuzz/corpus/checkpoint/.

Each seed is a safetensors file without tensors whose metadata is that of a real
lvmmed checkpoint (as lvmmed_pretrainer_save writes it), plus variants that reach the
other branches of the validation: another optimizer and GCN depth, a value out of
range, a newer format, a missing configuration. Run after changing the format:
  /usr/bin/python3 tests/fuzz/make_checkpoint_corpus.py
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def config(optimizer=2.0, gcn_layers=2.0, knn=5.0):
    return {
        "pretrainer": {"arch": 1.0, "optimizer": optimizer, "frozen_bn": 0.0, "local_term": 1.0, "batch": 32.0},
        "backbone": {"proj_out": 128.0, "proj_hidden": 0.0},
        "affinity": {"group_size": 16.0, "knn": knn, "feature_dim": 128.0, "gcn_width": 128.0,
                     "gcn_layers": gcn_layers, "gcn_relu_last": 1.0, "symmetrize": 1.0, "alpha": 0.8,
                     "gamma_loc": 20.0, "gamma_feat": 49.0, "local_norm": 0.0},
        "imle": {"noise": 1.0, "noise_scale": 1.0, "sog_kappa": 0.0, "sog_terms": 10.0, "lambda": 80.0,
                 "samples": 1.0, "noise_edges": 1.0, "reduction": 0.0},
        "optimizer": {"lr": 0.002, "weight_decay": 0.0, "momentum": 0.9, "nesterov": 0.0, "beta1": 0.9,
                      "beta2": 0.999, "eps": 1e-8, "decoupled": 0.0, "trust": 0.001, "schedule": 2.0,
                      "warmup_steps": 10.0, "total_steps": 1.0, "min_lr_ratio": 0.0, "step_every": 100.0,
                      "gamma": 0.5},
        "solver": {"method": 0.0, "max_iter": 50.0, "restarts": 0.0, "maximize": 0.0},
    }


def meta(**over):
    m = {"format": "pt", "lvmmed_checkpoint": "1", "lvmmed_arch": "resnet18", "step": "300", "epoch": "17",
         "position": "96", "images": "9600", "noise_counter": "300", "seed": "0", "threads": "2",
         "image_height": "64", "image_width": "64", "lvmmed_config": json.dumps(config(), separators=(",", ":"))}
    m.update(over)
    return {k: v for k, v in m.items() if v is not None}


def safetensors(metadata):
    header = json.dumps({"__metadata__": metadata}, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header


def main():
    out = os.path.join(HERE, "corpus", "checkpoint")
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        os.remove(os.path.join(out, f))
    seeds = {
        "adam_gcn2": meta(),
        "sgd_gcn0": meta(lvmmed_config=json.dumps(config(optimizer=1.0, gcn_layers=0.0))),
        "knn_out_of_range": meta(lvmmed_config=json.dumps(config(knn=-5.0))),
        "newer_format": meta(lvmmed_checkpoint="2"),
        "no_config": meta(lvmmed_config=None),
        "bad_counter": meta(noise_counter="18446744073709551616"),
    }
    for name, m in seeds.items():
        with open(os.path.join(out, name + ".safetensors"), "wb") as f:
            f.write(safetensors(m))
    print(f"{len(seeds)} seeds in {out}")


if __name__ == "__main__":
    main()
