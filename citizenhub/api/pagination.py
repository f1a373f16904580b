"""Keyset (cursor) pagination: stable pages however many rows are added while paging."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q, QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param


class KeysetPagination(BasePagination):
    """Pages a queryset by a unique ordering such as ("-occurred_at", "-id").

    The cursor holds the last row's ordering values, so the next page is
    `WHERE (occurred_at, id) < (last_occurred_at, last_id)`: rows inserted anywhere never
    shift, skip or repeat rows of later pages, unlike offset paging. The last field must be
    unique; all fields share one direction.
    """

    ordering: tuple[str, ...] = ("-id",)
    page_size = 50
    max_page_size = 200
    cursor_query_param = "cursor"
    page_size_query_param = "page_size"

    def __init__(self, ordering: tuple[str, ...] | None = None) -> None:
        if ordering:
            self.ordering = ordering
        descending = {field.startswith("-") for field in self.ordering}
        if len(descending) != 1:
            raise ValueError("KeysetPagination fields must all share one direction")
        self.descending = descending.pop()
        self.fields = [field.lstrip("-") for field in self.ordering]

    def _page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            raise ValidationError({self.page_size_query_param: "Must be a whole number."}) from None
        if size < 1:
            raise ValidationError({self.page_size_query_param: "Must be at least 1."})
        return min(size, self.max_page_size)

    def _decode(self, raw: str) -> list[Any]:
        try:
            values = json.loads(base64.urlsafe_b64decode(raw.encode("ascii") + b"=="))
        except (ValueError, binascii.Error, UnicodeError):
            raise ValidationError({self.cursor_query_param: "This cursor is not valid."}) from None
        if not isinstance(values, list) or len(values) != len(self.fields):
            raise ValidationError({self.cursor_query_param: "This cursor is not valid."})
        return values

    def _encode(self, row: Any) -> str:
        values = []
        for field in self.fields:
            value = getattr(row, field)
            values.append(value.isoformat() if hasattr(value, "isoformat") else value)
        return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")

    def _after(self, values: list[Any]) -> Q:
        op = "lt" if self.descending else "gt"
        condition = Q()
        for index in range(len(self.fields) - 1, -1, -1):
            tail = Q(**{f"{self.fields[index]}__{op}": values[index]})
            equal = Q(**{self.fields[i]: values[i] for i in range(index)})
            condition |= equal & tail
        return condition

    def paginate_queryset(self, queryset: QuerySet, request: Request, view=None) -> list:
        self.request = request
        size = self._page_size(request)
        queryset = queryset.order_by(*self.ordering)
        raw_cursor = request.query_params.get(self.cursor_query_param)
        if raw_cursor:
            try:
                queryset = queryset.filter(self._after(self._decode(raw_cursor)))
            except (ValueError, TypeError, DjangoValidationError):
                raise ValidationError(
                    {self.cursor_query_param: "This cursor is not valid."}
                ) from None
        rows = list(queryset[: size + 1])
        self.has_next = len(rows) > size
        rows = rows[:size]
        self.next_cursor = self._encode(rows[-1]) if self.has_next and rows else None
        return rows

    def get_next_link(self) -> str | None:
        if not self.next_cursor:
            return None
        url = self.request.build_absolute_uri()
        return replace_query_param(url, self.cursor_query_param, self.next_cursor)

    def get_paginated_response(self, data: list) -> Response:
        return Response({"next": self.get_next_link(), "results": data})

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {
            "type": "object",
            "required": ["results"],
            "properties": {
                "next": {
                    "type": "string",
                    "nullable": True,
                    "format": "uri",
                    "description": "The next page, or null on the last page.",
                },
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "Opaque cursor from the previous page's `next` link.",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Rows per page (default {self.page_size}, at most "
                f"{self.max_page_size}; larger values are capped).",
                "schema": {"type": "integer", "minimum": 1},
            },
        ]


class CitizenPagination(KeysetPagination):
    ordering = ("-id",)


class TimelinePagination(KeysetPagination):
    ordering = ("-occurred_at", "-id")
