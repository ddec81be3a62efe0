"""Would other features make a better chat3d style judge? Run: python scripts/judge_features.py

Each candidate is scored by 5-fold cross-validation on the judge's TRAIN split only (197 texts); its
accuracy on the 66 held-out texts is printed for the record, not used to choose. Result (2026-11-26):
TF-IDF word or character n-grams reach 0.65-0.71 CV (held-out 0.62-0.68), MiniLM + logistic regression
0.53-0.60 CV (held-out 0.58-0.67); nothing reaches the 0.85 aimed for, so the judge stays as it is.
"""
import numpy as np
from pathlib import Path
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import cross_val_score, StratifiedKFold
from sklearn.pipeline import make_pipeline
from steerlab.data.files import read_labelled
from steerlab.metrics.judge import heldout_split
from steerlab.metrics.embedding import SentenceEmbedder
texts, labels = read_labelled(Path("studies/data/chat3d/judge.jsonl"))
train, test = heldout_split(labels, 0.25, 0)
emb = SentenceEmbedder.load().embed(texts)
y = np.array(labels)
cv = StratifiedKFold(5, shuffle=True, random_state=0)
def ovr(C): return OneVsRestClassifier(LogisticRegression(C=C, max_iter=5000))
res = {}
for C in [0.3, 1, 3, 10, 30, 100]:
    res[f"minilm C={C}"] = (cross_val_score(ovr(C), emb[train], y[train], cv=cv).mean(), ovr(C).fit(emb[train], y[train]).score(emb[test], y[test]))
tr_texts = [texts[i] for i in train]; te_texts = [texts[i] for i in test]
for name, vec in [("tfidf word12", lambda: TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)),
                  ("tfidf char25", lambda: TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2))]:
    for C in [1, 10, 100]:
        pipe = lambda: make_pipeline(vec(), ovr(C))
        res[f"{name} C={C}"] = (cross_val_score(pipe(), np.array(tr_texts, dtype=object), y[train], cv=cv).mean(), pipe().fit(tr_texts, y[train]).score(te_texts, y[test]))
print("n train", len(train), "test", len(test))
for k, (cvs, ho) in sorted(res.items(), key=lambda kv: -kv[1][0]):
    print(f"{k:22s} cv {cvs:.3f}   held-out {ho:.3f}")
