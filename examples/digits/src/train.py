"""Train logistic regression on scikit-learn's 8x8 digits and log its accuracy.

Uses the Azure ML v1 run API, which tug provides in every environment image, so the
same script logs metrics on Azure ML and on tug.
"""
import argparse
import os
import pickle
import time

from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from azureml.core import Run


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--max-iter", type=int, default=300)
    parser.add_argument("--test-size", type=float, default=0.25)
    parser.add_argument("--model-dir", default="./outputs")
    args = parser.parse_args()

    run = Run.get_context()
    run.log("C", args.C)
    run.log("max_iter", args.max_iter)

    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data, digits.target, test_size=args.test_size, random_state=42, stratify=digits.target
    )
    print(f"training on {len(x_train)} images, testing on {len(x_test)}")

    start = time.time()
    model = make_pipeline(StandardScaler(), LogisticRegression(C=args.C, max_iter=args.max_iter))
    model.fit(x_train, y_train)
    print(f"trained in {time.time() - start:.2f} s")

    predicted = model.predict(x_test)
    accuracy = accuracy_score(y_test, predicted)
    run.log("accuracy", float(accuracy))
    run.log("f1_macro", float(f1_score(y_test, predicted, average="macro")))
    print(f"accuracy: {accuracy:.4f}")

    os.makedirs(args.model_dir, exist_ok=True)
    path = os.path.join(args.model_dir, "model.pkl")
    with open(path, "wb") as f:
        pickle.dump(model, f)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
