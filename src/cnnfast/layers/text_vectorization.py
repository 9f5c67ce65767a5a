"""TextVectorization: raw strings -> token ids or bag-of-words vectors (``keras.layers.TextVectorization``).

Keras 3 runs this layer in TensorFlow string ops; cnnfast does the same steps in Python and NumPy:

1. standardize: ``"lower"`` lowercases ASCII letters only (``tf.strings.lower`` without an
   encoding), ``"strip_punctuation"`` removes the characters of Keras's regex
   ``[!"#$%&()\\*\\+,-\\./:;<=>?@\\[\\\\\\]^_`{|}~\\']``, ``"lower_and_strip_punctuation"`` does
   both; a callable gets a NumPy array of ``str`` (as Keras hands it on non-TensorFlow
   backends) and returns one.
2. split: ``"whitespace"`` splits on runs of ASCII whitespace (``tf.strings.split``),
   ``"character"`` into Unicode code points, None keeps each input as one token; a callable is
   called with one ``str`` and returns its list of tokens.
3. ngrams: ``ngrams=n`` adds the 2..n-grams (tokens joined by a space) after the tokens, width by
   width, as ``tf.strings.ngrams``; a tuple picks the widths.
4. lookup: the vocabulary is ``["", "[UNK]", tokens...]`` in ``"int"`` mode (0 pads, 1 is
   out-of-vocabulary) and ``["[UNK]", tokens...]`` otherwise. ``adapt`` counts the tokens and
   orders them by count, ties by the token's UTF-8 bytes, both descending (Keras's
   ``np.lexsort((tokens, counts))[::-1]``), keeping ``max_tokens`` entries in all.
5. output: ``"int"`` pads each row with 0 to the longest row of the batch, or pads/truncates to
   ``output_sequence_length``; ``"multi_hot"``, ``"count"`` and ``"tf_idf"`` give one float32 row
   of ``vocabulary_size()`` (``max_tokens`` with ``pad_to_max_tokens``) per string, with
   ``idf = log(1 + documents / (1 + documents containing the token))`` and the mean idf for OOV.

Tokenising is per string (Python's ``str`` methods and ``re``); counting (``collections.Counter``
over the flat token list), the vocabulary lookup (a ``searchsorted`` over the sorted vocabulary)
and the output assembly are whole-batch NumPy operations. The vocabulary (and idf weights) are part
of the layer's config, so a saved model carries them.
"""
from __future__ import annotations

import collections
import re

import numpy as np

from .base import Layer, as_string_array

__all__ = ["TextVectorization"]

_STRIP = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')
_WHITESPACE = re.compile(r"[ \t\n\v\f\r]+")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_MODES = ("int", "multi_hot", "count", "tf_idf")
OOV_TOKEN, MASK_TOKEN = "[UNK]", ""


def _choice(value, allowed, name):
    if value is None or callable(value) or value in allowed:
        return value
    raise ValueError(f"TextVectorization: unknown value for `{name}` argument. Allowed values are: "
                     f"{list(allowed)}, None or a callable. Received: {name}={value!r}")


class TextVectorization(Layer):
    """Maps strings to integer token sequences or to multi-hot / count / TF-IDF vectors.

    Use it on a ``string`` input (``Input(shape=(1,), dtype="string")`` or ``shape=()``) before
    an Embedding (``"int"`` mode) or a Dense layer (the other modes); ``adapt`` it on the training
    text first, or give it a ``vocabulary``. See the module docstring for each step.
    """

    _input_dtypes = ("string",)

    def __init__(self, max_tokens=None, standardize="lower_and_strip_punctuation", split="whitespace",
                 ngrams=None, output_mode="int", output_sequence_length=None, pad_to_max_tokens=False,
                 vocabulary=None, idf_weights=None, sparse=False, ragged=False, encoding="utf-8", name=None,
                 *, vocabulary_size=None, has_input_vocabulary=None, **kwargs):
        dtype = kwargs.pop("dtype", None)
        if dtype not in (None, "int64", "int32", "float32", "string"):
            raise ValueError(f"TextVectorization: dtype must be int64 (int mode) or float32, got {dtype!r}")
        super().__init__(name=name, **kwargs)
        if sparse:
            raise ValueError("`sparse=True` can only be used with the TensorFlow backend; cnnfast "
                             "returns dense arrays")
        if ragged:
            raise ValueError("`ragged=True` can only be used with the TensorFlow backend; cnnfast "
                             "returns padded arrays")
        self._standardize = _choice(standardize, ("lower_and_strip_punctuation", "lower",
                                                  "strip_punctuation"), "standardize")
        self._split = _choice(split, ("whitespace", "character"), "split")
        output_mode = {"binary": "multi_hot", "tf-idf": "tf_idf"}.get(output_mode, output_mode)
        if output_mode not in _MODES:
            raise ValueError(f"TextVectorization: unknown value for `output_mode` argument. Allowed "
                             f"values are: {list(_MODES)}. Received: output_mode={output_mode!r}")
        if not (ngrams is None or (isinstance(ngrams, int) and not isinstance(ngrams, bool)) or
                (isinstance(ngrams, (tuple, list)) and all(isinstance(n, int) for n in ngrams))):
            raise ValueError(f"`ngrams` must be None, an integer, or a tuple of integers. Received: "
                             f"ngrams={ngrams}")
        if isinstance(ngrams, (tuple, list)):
            ngrams = tuple(ngrams)
        if any(n < 1 for n in ((ngrams,) if isinstance(ngrams, int) else ngrams or ())):
            raise ValueError(f"TextVectorization: ngram widths must be >= 1, got ngrams={ngrams}")
        if output_mode == "int" and not (output_sequence_length is None or (
                isinstance(output_sequence_length, int) and not isinstance(output_sequence_length, bool)
                and output_sequence_length >= 1)):
            raise ValueError("`output_sequence_length` must be either None or an integer when "
                             f"`output_mode` is 'int'. Received: output_sequence_length={output_sequence_length}")
        if output_mode != "int" and output_sequence_length is not None:
            raise ValueError("`output_sequence_length` must not be set if `output_mode` is not 'int'. "
                             f"Received output_sequence_length={output_sequence_length}.")
        if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)
                                       or max_tokens <= 1):
            raise ValueError(f"If set, `max_tokens` must be greater than 1. Received: max_tokens={max_tokens}")
        if pad_to_max_tokens and max_tokens is None:
            raise ValueError(f"If pad_to_max_tokens is True, must set `max_tokens`. Received: "
                             f"max_tokens={max_tokens}")
        if idf_weights is not None and output_mode != "tf_idf":
            raise ValueError("`idf_weights` should only be set if `output_mode` is `'tf_idf'`. "
                             f"Received: output_mode={output_mode} and idf_weights={idf_weights}")
        if encoding.lower().replace("-", "") not in ("utf8",):
            raise ValueError(f"TextVectorization: cnnfast decodes bytes as UTF-8, got encoding={encoding!r}")
        self._ngrams_arg = ngrams
        self._ngrams = tuple(range(1, ngrams + 1)) if isinstance(ngrams, int) else ngrams
        self._output_mode = output_mode
        self._output_sequence_length = output_sequence_length
        self._max_tokens = max_tokens
        self._pad_to_max_tokens = bool(pad_to_max_tokens)
        self._encoding = encoding
        self._has_input_vocabulary = vocabulary is not None if has_input_vocabulary is None \
            else bool(has_input_vocabulary)
        self._tokens = []          # the learned or given tokens, special tokens excluded
        self._idf = None           # float32 idf weights of vocabulary_size() entries (tf_idf)
        self._lookup = None        # (sorted tokens as a NumPy str array, their ids)
        self.reset_state()
        if vocabulary is not None:
            self._set_vocabulary(vocabulary, idf_weights)
        self.built = True

    # -- vocabulary ------------------------------------------------------------------------------
    def _token_start(self):
        return 2 if self._output_mode == "int" else 1

    def _special_tokens(self):
        return [MASK_TOKEN, OOV_TOKEN] if self._output_mode == "int" else [OOV_TOKEN]

    def get_vocabulary(self, include_special_tokens=True):
        """The vocabulary in index order: ``["", "[UNK]", ...]`` in int mode."""
        tokens = list(self._tokens)
        return self._special_tokens() + tokens if include_special_tokens else tokens

    def vocabulary_size(self):
        """The size of the vocabulary, the mask and OOV entries included."""
        return self._token_start() + len(self._tokens)

    def set_vocabulary(self, vocabulary, idf_weights=None):
        """Set the vocabulary (a list or 1-D array of strings, with or without the leading special
        tokens) and, in ``tf_idf`` mode, its idf weights (same length)."""
        self._set_vocabulary(vocabulary, idf_weights)
        self._has_input_vocabulary = True

    def _set_vocabulary(self, vocabulary, idf_weights):
        if self._output_mode == "tf_idf" and idf_weights is None:
            raise ValueError("`idf_weights` must be set if output_mode is 'tf_idf'.")
        if self._output_mode != "tf_idf" and idf_weights is not None:
            raise ValueError("`idf_weights` should only be set if output_mode is `'tf_idf'`. Received: "
                             f"output_mode={self._output_mode} and idf_weights={idf_weights}")
        if isinstance(vocabulary, (str, bytes)):
            raise ValueError("TextVectorization: vocabulary must be a list of strings; cnnfast never reads "
                             f"a vocabulary from a file path (got {vocabulary!r})")
        vocab = [str(v) for v in as_string_array(vocabulary, "TextVectorization", "vocabulary").reshape(-1)]
        if not vocab:
            raise ValueError(f"Cannot set an empty vocabulary. Received: vocabulary={vocabulary}")
        special = self._special_tokens()
        found_special = vocab[:len(special)] == special
        tokens = vocab[len(special):] if found_special else vocab
        repeated = [t for t, c in collections.Counter(tokens).items() if c > 1]
        if repeated:
            raise ValueError("The passed vocabulary has at least one repeated term. Please uniquify your "
                             f"dataset. The repeated terms are: {repeated}")
        if self._output_mode == "int" and MASK_TOKEN in tokens:
            raise ValueError("Found reserved mask token at unexpected location in `vocabulary`. Note that "
                             "passed `vocabulary` does not need to include the OOV and mask tokens. Either "
                             "remove all mask and OOV tokens, or include them only at the start of the "
                             f"vocabulary in precisely this order: {special}.")
        size = len(special) + len(tokens)
        if self._max_tokens is not None and size > self._max_tokens:
            raise ValueError("Attempted to set a vocabulary larger than the maximum vocab size. Received "
                             f"vocabulary size is {size}; `max_tokens` is {self._max_tokens}.")
        idf = None
        if idf_weights is not None:
            w = np.asarray(idf_weights, dtype=np.float64)
            if w.ndim != 1:
                raise ValueError(f"TF-IDF data must be a 1-index array. Received shape {w.shape}")
            if len(w) != len(vocab):
                raise ValueError(f"`idf_weights` must be the same length as vocabulary. len(idf_weights) "
                                 f"is {len(w)}; len(vocabulary) is {len(vocab)}")
            idf = w if found_special else np.concatenate([np.full(len(special), np.mean(w)), w])
        self._install(tokens, idf)

    def _install(self, tokens, idf):
        self._tokens = list(tokens)
        ids = np.arange(self._token_start(), self._token_start() + len(tokens), dtype=np.int64)
        keys = np.array(self._tokens, dtype=str) if tokens else np.array([], dtype="<U1")
        if self._output_mode == "int":   # the mask token "" looks up as 0
            keys, ids = np.append(keys, MASK_TOKEN), np.append(ids, 0)
        order = np.argsort(keys, kind="stable")
        self._lookup = (keys[order], ids[order])
        self._idf = None if idf is None else np.asarray(idf, np.float32)

    # -- adapt -----------------------------------------------------------------------------------
    def reset_state(self):
        self._counts = collections.Counter()
        self._doc_counts = collections.Counter()
        self._num_documents = 0

    def adapt(self, data, batch_size=None, steps=None):
        """Learn the vocabulary (and document frequencies for ``tf_idf``) from ``data``: a list or
        array of strings, or any iterable of such batches (a generator, a ``PyDataset``...);
        ``steps`` limits the number of batches read from an iterable."""
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
            raise ValueError(f"TextVectorization.adapt: steps must be a positive integer, got {steps!r}")
        self.reset_state()
        if isinstance(data, (list, tuple, np.ndarray, str, bytes)):
            self.update_state(np.asarray(data).reshape(-1, 1) if np.ndim(data) <= 1 else data)
        elif hasattr(data, "__iter__"):
            for i, batch in enumerate(data):
                if steps is not None and i >= steps:
                    break
                if isinstance(batch, tuple) and len(batch) in (2, 3):
                    batch = batch[0]   # (x, y[, w]) batches of a training data set: the text is x
                self.update_state(batch)
        else:
            raise TypeError(f"TextVectorization.adapt: data must be strings or an iterable of string "
                            f"batches, got {type(data).__name__}")
        self.finalize_state()

    def update_state(self, data):
        """Add the tokens of one batch of strings to the counts."""
        if self._has_input_vocabulary:
            raise ValueError(f"Cannot adapt layer '{self.name}' after setting a static vocabulary via "
                             "`vocabulary` argument or `set_vocabulary()` method.")
        arr = as_string_array(data, f"TextVectorization '{self.name}'", "adapt data")
        if arr.ndim == 0:
            arr = arr.reshape(1, 1)
        docs = self._tokenize(arr)
        self._counts.update(t for doc in docs for t in doc)
        if self._output_mode == "tf_idf":
            self._doc_counts.update(t for doc in docs for t in set(doc))
            self._num_documents += len(docs)

    def finalize_state(self):
        """Turn the counts into the vocabulary."""
        if self._has_input_vocabulary or not self._counts:
            return
        counts = self._counts
        for special in (MASK_TOKEN, OOV_TOKEN):
            counts.pop(special, None)
        ranked = sorted(counts.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
        if self._max_tokens:
            ranked = ranked[:max(self._max_tokens - self._token_start(), 0)]
        tokens = [t for t, _ in ranked]
        idf = None
        if self._output_mode == "tf_idf":
            docs = np.array([self._doc_counts[t] for t in tokens], np.float64)
            w = np.log(1.0 + self._num_documents / (1.0 + docs))
            idf = np.concatenate([np.full(self._token_start(), w.mean() if w.size else 0.0), w])
        self._install(tokens, idf)
        self.reset_state()

    # -- tokenising ------------------------------------------------------------------------------
    def _standardize_strings(self, flat):
        mode = self._standardize
        if callable(mode):
            out = np.asarray(mode(np.array(flat, dtype=str)))
            return [str(s) for s in out.reshape(-1)]
        if mode in ("lower", "lower_and_strip_punctuation"):
            flat = [s.translate(_ASCII_LOWER) for s in flat]
        if mode in ("strip_punctuation", "lower_and_strip_punctuation"):
            flat = [_STRIP.sub("", s) for s in flat]
        return flat

    def _tokenize(self, arr):
        """The token lists, one per document, of an object array of strings of shape ``(n,)``,
        ``(n, 1)`` or (with ``split=None``) ``(n, k)`` tokens."""
        if self._split is not None:
            if arr.ndim > 1:
                if arr.shape[-1] != 1 or arr.ndim > 2:
                    raise ValueError("When using `TextVectorization` to tokenize strings, the input rank "
                                     "must be 1 or the last shape dimension must be 1. Received: "
                                     f"inputs.shape={arr.shape} with rank={arr.ndim}")
                arr = arr.reshape(arr.shape[0])
            flat = self._standardize_strings(list(arr))
            if self._split == "whitespace":
                docs = [[t for t in _WHITESPACE.split(s) if t] for s in flat]
            elif self._split == "character":
                docs = [list(s) for s in flat]
            else:
                docs = [[str(t) for t in self._split(s)] for s in flat]
        else:
            rows = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr.reshape(-1, 1)
            flat = self._standardize_strings(list(rows.reshape(-1)))
            k = rows.shape[1]
            docs = [flat[i * k:(i + 1) * k] for i in range(rows.shape[0])]
        if self._ngrams is not None:
            docs = [[" ".join(doc[i:i + n]) for n in self._ngrams for i in range(len(doc) - n + 1)]
                    for doc in docs]
        return docs

    def _encode(self, tokens):
        """Token ids of a flat list of tokens (OOV -> 1 in int mode, 0 otherwise)."""
        keys, ids = self._lookup
        toks = np.array(tokens, dtype=str) if tokens else np.array([], dtype="<U1")
        if keys.size == 0:
            return np.full(toks.shape, self._token_start() - 1, np.int64)
        pos = np.minimum(np.searchsorted(keys, toks), keys.size - 1)
        return np.where(keys[pos] == toks, ids[pos], self._token_start() - 1)

    # -- calling ---------------------------------------------------------------------------------
    def _output_depth(self):
        return self._max_tokens if self._pad_to_max_tokens else self.vocabulary_size()

    def compute_output_shape(self, input_shape):
        if self._output_mode == "int":
            return (input_shape[0], self._output_sequence_length)
        has_vocab = self._lookup is not None and (self._tokens or self._has_input_vocabulary)
        depth = self._output_depth() if (self._pad_to_max_tokens or has_vocab) else None
        return (input_shape[0], depth)

    def _output_dtype(self, input_dtype):
        return "int64" if self._output_mode == "int" else "float32"

    def forward(self, x, training, ctx):
        if self._lookup is None:
            self._install([], None)
        arr = x if x.dtype == object else as_string_array(x, f"TextVectorization '{self.name}'", "inputs")
        docs = self._tokenize(arr)
        n = len(docs)
        lengths = np.fromiter((len(d) for d in docs), np.int64, count=n)
        ids = self._encode([t for d in docs for t in d])
        if self._output_mode == "int":
            return self._pad(ids, lengths)
        if self._output_mode == "tf_idf" and self._idf is None:
            raise RuntimeError("When using `output_mode=tf_idf`, you must set the layer's vocabulary and "
                               "idf weights (adapt it, or pass vocabulary= and idf_weights=)")
        depth = self._output_depth()
        rows = np.repeat(np.arange(n, dtype=np.int64), lengths)
        counts = np.bincount(rows * depth + ids, minlength=n * depth).reshape(n, depth)
        if self._output_mode == "multi_hot":
            return (counts > 0).astype(np.float32)
        if self._output_mode == "count":
            return counts.astype(np.float32)
        idf = np.zeros(depth, np.float32)
        idf[:min(depth, self._idf.size)] = self._idf[:depth]
        return counts.astype(np.float32) * idf

    def _pad(self, ids, lengths):
        """Rows of ``lengths`` ids, zero-padded to the longest (or to output_sequence_length,
        truncating longer rows)."""
        n = lengths.size
        width = self._output_sequence_length
        if width is None:
            width = int(lengths.max()) if n else 0
        starts = np.cumsum(lengths) - lengths
        position = np.arange(ids.size, dtype=np.int64) - np.repeat(starts, lengths)
        keep = position < width
        out = np.zeros((n, width), np.int64)
        out[np.repeat(np.arange(n, dtype=np.int64), lengths)[keep], position[keep]] = ids[keep]
        return out

    def backward(self, dy, ctx, need_dx):
        return None   # strings have no gradient

    # -- config ----------------------------------------------------------------------------------
    def get_config(self):
        for key, value in (("standardize", self._standardize), ("split", self._split)):
            if callable(value):
                raise ValueError(f"TextVectorization '{self.name}': a callable `{key}` cannot be saved in a "
                                 "config (cnnfast never stores code); use one of the named options")
        config = super().get_config()
        config["dtype"] = "int64" if self._output_mode == "int" else "float32"
        has_vocab = bool(self._tokens)
        idf = None
        if self._output_mode == "tf_idf" and has_vocab and self._idf is not None:
            idf = [float(v) for v in self._idf[self._token_start():self.vocabulary_size()]]
        config.update(max_tokens=self._max_tokens, standardize=self._standardize, split=self._split,
                      ngrams=list(self._ngrams_arg) if isinstance(self._ngrams_arg, tuple) else self._ngrams_arg,
                      output_mode=self._output_mode, output_sequence_length=self._output_sequence_length,
                      pad_to_max_tokens=self._pad_to_max_tokens, sparse=False, ragged=False,
                      vocabulary=list(self._tokens) if has_vocab else None, idf_weights=idf,
                      encoding=self._encoding, vocabulary_size=self.vocabulary_size())
        return config
