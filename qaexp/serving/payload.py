"""Reading POST /predict bodies (the Hugging Face Inference API's question-answering shape) and shaping replies.

    {"inputs": {"question": "...", "context": "..."}, "parameters": {"top_k": 3}}
    {"inputs": [{"question": "...", "context": "..."}, ...]}

Every problem is a RequestError with an HTTP status and one line saying what is wrong.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from qaexp.data.window_rule import N_BEST_SIZE

TOP_K_LIMIT = N_BEST_SIZE  # the n-best list post-processing keeps
ACCEPTED_FIELDS = {"inputs", "parameters", "options"}  # "options" (wait_for_model, use_cache) is accepted, unused
ACCEPTED_PARAMETERS = {"top_k"}


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
    questions: list[dict]  # {"question", "context"} each
    top_k: int
    single: bool  # inputs was one object, not a list: the reply is not wrapped in a list


def parse_predict_body(body: bytes, limits: Limits) -> PredictRequest:
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
    questions = [_question(item, name, limits) for item, name in zip(items, where)]
    return PredictRequest(questions, _top_k(payload.get("parameters")), single)


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


def _top_k(parameters) -> int:
    if parameters is None:
        return 1
    if not isinstance(parameters, dict):
        raise RequestError(422, f'"parameters" must be an object such as {{"top_k": 3}}, not {_kind(parameters)}')
    unknown = sorted(set(parameters) - ACCEPTED_PARAMETERS)
    if unknown:
        raise RequestError(422, f"unsupported parameter {unknown[0]!r}: this service takes top_k")
    top_k = parameters.get("top_k", 1)
    if not isinstance(top_k, int) or isinstance(top_k, bool):
        raise RequestError(422, f"parameters.top_k must be an integer, not {_kind(top_k)}")
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
