"""Regenerates leaderboard.csv for fine-food-reviews, byte for byte.

The field is automated reference pipelines, not people: bag-of-words / TF-IDF representations
(word or character n-grams, vocabulary sizes) crossed with scikit-learn text classifiers and
training-set fractions, each trained on public/train.csv and scored (accuracy) on the private
answers.

    python competitions/fine-food-reviews/build_leaderboard.py [--check] [--limit N] [OUT.csv]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import leaderboard_tools as lt  # first: it sets the thread variables before numpy loads

import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression, RidgeClassifier, SGDClassifier
from sklearn.naive_bayes import BernoulliNB, ComplementNB, MultinomialNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import FeatureUnion
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

HERE = Path(__file__).resolve().parent
SEED = 11
FRACTIONS = [0.05, 0.15, 0.4, 1.0]


def _vectorizers():
    yield "counts(word1,max=2000)", lambda: CountVectorizer(max_features=2000, binary=True)
    yield "tfidf(word1)", lambda: TfidfVectorizer(min_df=2, sublinear_tf=True)
    yield "tfidf(word1-2)", lambda: TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    yield "tfidf(char2-4)", lambda: TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=3,
                                                    max_features=20000, sublinear_tf=True)
    yield "tfidf(word1,max=300)", lambda: TfidfVectorizer(max_features=300, sublinear_tf=True)
    yield "tfidf(word1-3)", lambda: TfidfVectorizer(ngram_range=(1, 3), sublinear_tf=True)
    yield "tfidf(word1-2)+tfidf(char2-5)", lambda: FeatureUnion([
        ("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
        ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True))])


def _models():
    yield "majority", lambda: DummyClassifier(strategy="most_frequent")
    yield "multinomial_nb", lambda: MultinomialNB(alpha=0.5)
    yield "complement_nb", lambda: ComplementNB(alpha=0.5)
    yield "bernoulli_nb", lambda: BernoulliNB(alpha=1.0)
    for c in (0.1, 1.0, 10.0, 30.0):
        yield f"logreg(C={c})", lambda c=c: LogisticRegression(C=c, max_iter=1000)
    for c in (0.05, 1.0):
        yield f"linear_svc(C={c})", lambda c=c: LinearSVC(C=c, random_state=SEED)
    yield "ridge_classifier", lambda: RidgeClassifier(alpha=3.0)
    yield "sgd(hinge)", lambda: SGDClassifier(random_state=SEED, max_iter=50, tol=None)
    for k in (5, 25):
        yield f"knn_cosine(k={k})", lambda k=k: KNeighborsClassifier(n_neighbors=k, metric="cosine",
                                                                      algorithm="brute")
    yield "tree(depth=6)", lambda: DecisionTreeClassifier(max_depth=6, random_state=SEED)


def build():
    train, test, answers = lt.read_prepared(HERE)
    y_true = answers.set_index("id").loc[test["id"], "score"].to_numpy()
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(train))
    for frac in FRACTIONS:
        idx = np.sort(order[: int(round(frac * len(train)))])
        texts, y_tr = train["review"].to_numpy()[idx], train["score"].to_numpy()[idx]
        for vname, make_vec in _vectorizers():
            vec = make_vec()
            f_tr = vec.fit_transform(texts)
            f_te = vec.transform(test["review"])
            for mname, make in _models():
                if mname == "majority" and vname != "tfidf(word1)":
                    continue
                model = make().fit(f_tr, y_tr)
                yield lt.Entry(f"{mname}|{vname}|train_frac={frac}", float(np.mean(model.predict(f_te) == y_true)))


if __name__ == "__main__":
    lt.main(build, HERE, lower_is_better=False, doc=__doc__, auto_ids=True)
