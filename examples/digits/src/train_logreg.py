"""Train logistic regression on the 8x8 digits step by step, logging accuracy after each.

A trial of `sweep-logreg.yml`: the sweep passes C and the solver; the script trains for
`--steps` steps of `--iters-per-step` solver iterations each (warm-started, so step k
continues where step k-1 stopped) and logs the held-out accuracy after every step. That
series is what the sweep's bandit policy judges, so a poor trial can be stopped after a
few steps instead of running to the end.

The training set is the digits images plus noisy copies of them, which makes each step
cost about what a small real model's epoch does.
"""
import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from azureml.core import Run


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--solver", default="lbfgs")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--iters-per-step", type=int, default=10)
    parser.add_argument("--copies", type=int, default=8)
    args = parser.parse_args()

    run = Run.get_context()
    run.log("C", args.C)
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data, digits.target, test_size=0.25, random_state=42, stratify=digits.target
    )
    # The training images plus noisy copies: the same task, with the cost of a bigger one.
    noise = np.random.default_rng(0)
    copies = [x_train] + [x_train + noise.normal(0, 1.0, x_train.shape) for _ in range(args.copies)]
    x_train = np.concatenate(copies)
    y_train = np.concatenate([y_train] * len(copies))
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    print(f"C={args.C} solver={args.solver}: {len(x_train)} training images, {args.steps} steps")

    model = LogisticRegression(
        C=args.C, solver=args.solver, max_iter=args.iters_per_step, warm_start=True, tol=1e-9,
        random_state=0,  # sag and saga shuffle: the same settings give the same curve
    )
    warnings.simplefilter("ignore", ConvergenceWarning)
    for step in range(args.steps):
        started = time.time()
        model.fit(x_train, y_train)
        accuracy = float(model.score(x_test, y_test))
        run.log("accuracy", accuracy)
        print(f"step {step + 1}/{args.steps}: accuracy {accuracy:.4f} ({time.time() - started:.2f} s)")


if __name__ == "__main__":
    main()
