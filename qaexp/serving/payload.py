"""Reading POST /predict bodies (the Hugging Face Inference API's question-answering shape) and shaping replies.

    {"inputs": {"question": "...", "context": "..."}, "parameters": {"top_k": 3}}
    {"inputs": [{"question": "...", "context": "..."}, ...]}

The parameters are the Inference API's (those huggingface_hub's InferenceClient.question_answering sends when its
caller gives them): top_k, max_answer_len and handle_impossible_answer change this request's answers; max_seq_len
and doc_stride are the service's windows (fixed when it starts: accepted at the served value);
align_to_words=false is what qaexp does anyway. What cannot be honoured (align_to_words=true, max_question_len,
another window) is a 400 naming the parameter, an unknown name or a wrong type a 422.

Every problem is a RequestError with an HTTP status and one line saying what is wrong.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from qaexp.config.limits import NUMBERS
from qaexp.data.window_rule import N_BEST_SIZE

TOP_K_LIMIT = N_BEST_SIZE  # the n-best list post-processing keeps
ACCEPTED_FIELDS = {"inputs", "parameters", "options"}  # "options" (wait_for_model, use_cache) is accepted, unused
# Per request: the Inference API's name -> the AnswerSettings field it sets for that request's questions.
ANSWER_PARAMETERS = {"max_answer_len": "max_answer_length", "handle_impossible_answer": "version_2_with_negative"}
# The windows every request shares (tokenised before batching): a request may only name the served value.
WINDOW_PARAMETERS = {"max_seq_len": ("max_length", "--max-length"), "doc_stride": ("doc_stride", "--doc-stride")}
UNHONOURED = {"max_question_len": "qaexp keeps the whole question (a question too long for the window is cut to "
                                  "fit it), so the parameter cannot be honoured; leave it out"}
ACCEPTED_PARAMETERS = {"top_k", "align_to_words", *ANSWER_PARAMETERS, *WINDOW_PARAMETERS, *UNHONOURED}


class RequestError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Limits:
    max_context_chars: int = 50_000
    max_question_chars: int = 2_000
    max_inputs: int = 64  # questions in one request

    @property
    def max_body_bytes(self) -> int:  # every character may take 4 bytes in UTF-8, plus room for the JSON
        return 4 * self.max_inputs * (self.max_context_chars + self.max_question_chars) + 65_536


@dataclass
class PredictRequest:
    questions: list[dict]  # {"question", "context", "settings"} each: settings, the request's AnswerSettings changes
    top_k: int
    single: bool  # inputs was one object, not a list: the reply is not wrapped in a list


def parse_predict_body(body: bytes, limits: Limits, served) -> PredictRequest:
    """The request in `body`; `served`: the service's AnswerSettings (the windows a request may not change)."""
    if len(body) > limits.max_body_bytes:
        raise RequestError(413, f"the request body is {len(body)} bytes; this service takes at most "
                                f"{limits.max_body_bytes}")
    payload = _json_object(body)
    unknown = sorted(set(payload) - ACCEPTED_FIELDS)
    if unknown:
        raise RequestError(422, f"unknown field {unknown[0]!r}: send {{\"inputs\": ..., \"parameters\": ...}}")
    if "inputs" not in payload:
        raise RequestError(422, 'missing field "inputs": send {"inputs": {"question": "...", "context": "..."}}')
    inputs = payload["inputs"]
    single = isinstance(inputs, dict)
    if not single and not (isinstance(inputs, list) and inputs):
        kind = "an empty list" if inputs == [] else _kind(inputs)
        raise RequestError(422, f'"inputs" must be an object {{"question", "context"}} or a non-empty list of them, '
                                f"not {kind}")
    items = [inputs] if single else inputs
    if len(items) > limits.max_inputs:
        raise RequestError(413, f'"inputs" has {len(items)} questions; this service takes at most '
                                f"{limits.max_inputs} per request")
    where = ["inputs"] if single else [f"inputs[{n}]" for n in range(len(items))]
    parameters = _parameters(payload.get("parameters"))
    changes = _setting_changes(parameters, served)
    questions = [{**_question(item, name, limits), "settings": changes} for item, name in zip(items, where)]
    return PredictRequest(questions, _top_k(parameters), single)


def _json_object(body: bytes) -> dict:
    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise RequestError(400, f"the request body is not UTF-8 text (byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise RequestError(400, f"invalid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    if not isinstance(payload, dict):
        raise RequestError(422, f'the body must be a JSON object {{"inputs": ...}}, not {_kind(payload)}')
    return payload


def _question(item, where: str, limits: Limits) -> dict:
    if not isinstance(item, dict):
        raise RequestError(422, f'{where} must be an object {{"question", "context"}}, not {_kind(item)}')
    for field, limit in (("question", limits.max_question_chars), ("context", limits.max_context_chars)):
        if field not in item:
            raise RequestError(422, f'{where}: missing field "{field}"')
        value = item[field]
        if not isinstance(value, str):
            raise RequestError(422, f"{where}.{field} must be a string, not {_kind(value)}")
        if not value.strip():
            raise RequestError(422, f"{where}.{field} is empty")
        if len(value) > limit:
            raise RequestError(413, f"{where}.{field} has {len(value)} characters; this service takes at most "
                                    f"{limit}")
    return {"question": item["question"], "context": item["context"]}


def _parameters(parameters) -> dict:
    """The request's parameters, null ones left out (as huggingface_hub leaves out those its caller did not give)."""
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise RequestError(422, f'"parameters" must be an object such as {{"top_k": 3}}, not {_kind(parameters)}')
    unknown = sorted(set(parameters) - ACCEPTED_PARAMETERS)
    if unknown:
        raise RequestError(422, f"unsupported parameter {unknown[0]!r}: this service takes "
                                f"{', '.join(sorted(ACCEPTED_PARAMETERS))}")
    return {name: value for name, value in parameters.items() if value is not None}


def _setting_changes(parameters: dict, served) -> dict:
    """The AnswerSettings fields this request sets (a 400 for each parameter that cannot be honoured)."""
    for name, reason in UNHONOURED.items():
        if name in parameters:
            raise RequestError(400, f"parameters.{name}: {reason}")
    if _typed(parameters, "align_to_words", bool, "a boolean", default=False):
        raise RequestError(400, "parameters.align_to_words=true cannot be honoured: answers are the model's token "
                                "spans (never widened to whole words); send false or leave it out")
    for name, (field, flag) in WINDOW_PARAMETERS.items():
        value = _typed(parameters, name, int, "an integer")
        if value is not None and value != getattr(served, field):
            raise RequestError(400, f"parameters.{name}={value} cannot be honoured: this service's windows have "
                                    f"{field}={getattr(served, field)} (set when it starts: restart qaexp serve "
                                    f"with {flag} {value}), or leave it out")
    changes = {}
    answer_length = _typed(parameters, "max_answer_len", int, "an integer")
    if answer_length is not None:
        rule = NUMBERS["data.max_answer_length"]
        if rule.problem(answer_length):
            raise RequestError(422, f"parameters.max_answer_len must be in {rule.interval()}, got {answer_length}")
        changes[ANSWER_PARAMETERS["max_answer_len"]] = answer_length
    impossible = _typed(parameters, "handle_impossible_answer", bool, "a boolean")
    if impossible is not None:
        changes[ANSWER_PARAMETERS["handle_impossible_answer"]] = impossible
    return changes


def _typed(parameters: dict, name: str, kind: type, described: str, default=None):
    value = parameters.get(name, default)
    if value is None:
        return None
    # bool is an int in Python, but true is no token count
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RequestError(422, f"parameters.{name} must be {described}, not {_kind(value)}")
    return value


def _top_k(parameters: dict) -> int:
    top_k = _typed(parameters, "top_k", int, "an integer", default=1)
    if not 1 <= top_k <= TOP_K_LIMIT:
        raise RequestError(422, f"parameters.top_k must be between 1 and {TOP_K_LIMIT}, got {top_k}")
    return top_k


def _kind(value) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def reply(request: PredictRequest, ranked: list[list[dict]]):
    """The Inference API's shape: one answer (top_k 1) or a list of them, per question; a list of those for a list."""
    per_question = [candidates[0] if request.top_k == 1 else candidates[: request.top_k] for candidates in ranked]
    return per_question[0] if request.single else per_question
