"""CLI of feedback and fees: the stand-in payment gateway and the feedback report.

``motcua fake-gateway --port P`` runs a real HTTP payment gateway on loopback, speaking the
protocol of :class:`services.payments.HttpGateway`: orders are created by a signed POST, the payer
opens the payment page (or scans the QR payload) and presses "Thanh toán"; the gateway then
POSTs a callback signed with the shared secret to motcua's callback URL and sends the payer back.
For tests and the demo only: it keeps its orders in memory.

``motcua feedback report --from D --to D [--format table|csv]`` prints the Decision 766 feedback
indicators per agency (and the online-payment share), counted from the rows.
"""

from __future__ import annotations

import csv
import html
import json
import secrets
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any
from urllib.parse import parse_qs, urlparse

import httpx
import typer
from rich.console import Console
from rich.table import Table

from services.payments import SIGNATURE_HEADER, canonical, sign, verify

DEFAULT_SECRET = "motcua-dev-payment-secret"
feedback_app = typer.Typer(help="Phản ánh, kiến nghị / feedback", no_args_is_help=True)


# ---------------------------------------------------------------------------------------------
# The stand-in payment gateway
# ---------------------------------------------------------------------------------------------


@dataclass
class Order:
    gateway_ref: str
    order_ref: str
    amount: int
    description: str
    callback_url: str
    return_url: str
    status: str = "pending"  # pending / paid / cancelled
    created_at: str = ""
    paid_at: str | None = None
    txn_id: str | None = None
    callbacks: list[dict[str, Any]] = field(default_factory=list)


class FakeGateway:
    """The gateway's state and behaviour, served by :class:`FakeGatewayServer`."""

    def __init__(self, secret: str, public_url: str) -> None:
        self.secret = secret
        self.public_url = public_url.rstrip("/")
        self.orders: dict[str, Order] = {}
        self.by_order_ref: dict[str, str] = {}
        self.lock = threading.Lock()

    def create(self, data: dict[str, Any]) -> Order:
        with self.lock:
            ref = self.by_order_ref.get(str(data["order_ref"]))
            if ref is not None:
                return self.orders[ref]
            order = Order(
                gateway_ref="GW" + secrets.token_hex(8).upper(),
                order_ref=str(data["order_ref"]),
                amount=int(data["amount"]),
                description=str(data.get("description", "")),
                callback_url=str(data["callback_url"]),
                return_url=str(data.get("return_url", "")),
                created_at=datetime.now(UTC).isoformat(),
            )
            self.orders[order.gateway_ref] = order
            self.by_order_ref[order.order_ref] = order.gateway_ref
            return order

    def settle(self, gateway_ref: str, action: str) -> dict[str, Any]:
        """Pay (or cancel) an order and deliver the signed callback; returns what was sent."""
        with self.lock:
            order = self.orders[gateway_ref]
            if order.status == "pending":
                order.status = "paid" if action == "pay" else "cancelled"
                order.paid_at = datetime.now(UTC).isoformat() if action == "pay" else None
                order.txn_id = "TXN" + secrets.token_hex(6).upper()
        body_data = {
            "event_id": "EV" + secrets.token_hex(10).upper(),
            "order_ref": order.order_ref,
            "gateway_ref": order.gateway_ref,
            "txn_id": order.txn_id,
            "amount": order.amount,
            "status": order.status,
            "paid_at": order.paid_at,
            "sent_at": datetime.now(UTC).isoformat(),
        }
        body = canonical(body_data)
        signature = sign(self.secret, body)
        delivery: dict[str, Any] = {"body": body.decode(), "signature": signature}
        try:
            response = httpx.post(
                order.callback_url,
                content=body,
                headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
                timeout=15,
            )
            delivery.update(status=response.status_code, answer=response.text[:2000])
        except httpx.HTTPError as exc:
            delivery.update(status=None, answer=str(exc))
        order.callbacks.append(delivery)
        return delivery

    def transactions(self) -> list[dict[str, Any]]:
        return [
            {
                "order_ref": o.order_ref,
                "gateway_ref": o.gateway_ref,
                "amount": o.amount,
                "status": o.status,
                "paid_at": o.paid_at,
            }
            for o in self.orders.values()
        ]


def _pay_page(order: Order) -> str:
    amount = f"{order.amount:,}".replace(",", ".")
    disabled = "" if order.status == "pending" else " disabled"
    return f"""<!doctype html><html lang="vi"><head><meta charset="utf-8">
<title>Cổng thanh toán thử nghiệm</title></head><body>
<h1>Cổng thanh toán thử nghiệm (stand-in gateway)</h1>
<p>Đơn hàng <b>{html.escape(order.order_ref)}</b>: {html.escape(order.description)}</p>
<p>Số tiền: <b id="amount">{amount} đồng</b> — trạng thái: <b id="status">{order.status}</b></p>
<form method="post"><button name="action" value="pay"{disabled}>Thanh toán</button>
<button name="action" value="cancel"{disabled}>Hủy</button></form></body></html>"""


class _Handler(BaseHTTPRequestHandler):
    server: FakeGatewayServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _send(self, status: int, body: str | bytes, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data, ensure_ascii=False))

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        gateway = self.server.gateway
        url = urlparse(self.path)
        parts = url.path.strip("/").split("/")
        if parts == ["transactions"]:
            self._json(200, gateway.transactions())
        elif len(parts) == 2 and parts[0] == "pay" and parts[1] in gateway.orders:
            self._send(200, _pay_page(gateway.orders[parts[1]]), "text/html")
        elif len(parts) == 2 and parts[0] == "orders" and parts[1] in gateway.orders:
            order = gateway.orders[parts[1]]
            self._json(200, {**order.__dict__})
        elif parts == ["health"]:
            self._json(200, {"status": "ok"})
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        gateway = self.server.gateway
        url = urlparse(self.path)
        parts = url.path.strip("/").split("/")
        body = self._body()
        if parts == ["orders"]:
            if not verify(gateway.secret, body, self.headers.get(SIGNATURE_HEADER)):
                self._json(401, {"error": "bad signature"})
                return
            order = gateway.create(json.loads(body))
            self._json(
                201,
                {
                    "gateway_ref": order.gateway_ref,
                    "payment_url": f"{gateway.public_url}/pay/{order.gateway_ref}",
                    "qr_payload": (
                        f"FAKEPAY|{order.gateway_ref}|{order.amount}|VND|{order.order_ref}"
                    ),
                },
            )
        elif len(parts) == 2 and parts[0] == "pay" and parts[1] in gateway.orders:
            action = parse_qs(body.decode()).get("action", ["pay"])[0]
            gateway.settle(parts[1], "pay" if action == "pay" else "cancel")
            order = gateway.orders[parts[1]]
            if order.return_url:
                self.send_response(HTTPStatus.SEE_OTHER)
                self.send_header("Location", order.return_url)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._send(200, _pay_page(order), "text/html")
        elif len(parts) == 3 and parts[0] == "orders" and parts[2] in ("pay", "cancel"):
            if parts[1] not in gateway.orders:
                self._json(404, {"error": "no such order"})
                return
            self._json(200, gateway.settle(parts[1], parts[2]))
        else:
            self._json(404, {"error": "not found"})


class FakeGatewayServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, secret: str) -> None:
        super().__init__((host, port), _Handler)
        self.gateway = FakeGateway(secret, f"http://{host}:{self.server_address[1]}")

    @property
    def url(self) -> str:
        return self.gateway.public_url

    def start(self) -> FakeGatewayServer:
        threading.Thread(target=self.serve_forever, daemon=True, name="fake-gateway").start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def fake_gateway(
    port: Annotated[int, typer.Option(help="Cổng TCP trên 127.0.0.1 / loopback port")] = 8765,
    secret: Annotated[
        str,
        typer.Option(envvar="MOTCUA_PAYMENT_SECRET", help="Khóa ký HMAC dùng chung / shared key"),
    ] = DEFAULT_SECRET,
) -> None:
    """Cổng thanh toán thử nghiệm / a stand-in payment gateway on loopback (tests, demo)."""
    server = FakeGatewayServer("127.0.0.1", port, secret)
    print(f"fake gateway on {server.url} (orders: POST /orders; pay page: /pay/<ref>)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # pragma: no cover
        pass
    finally:
        server.server_close()


# ---------------------------------------------------------------------------------------------
# The feedback report
# ---------------------------------------------------------------------------------------------


REPORT_COLUMNS = (
    "agency", "all_in_scope", "early", "on_time", "late", "dissatisfied",
    "handled_on_time_pct", "satisfaction_pct", "on_time_points", "satisfaction_points",
)  # fmt: skip


def _fmt(value: Any) -> str:
    return "" if value is None else str(value)


@feedback_app.command("report")
def feedback_report(
    start: Annotated[str, typer.Option("--from", help="YYYY-MM-DD")],
    end: Annotated[str, typer.Option("--to", help="YYYY-MM-DD")],
    fmt: Annotated[str, typer.Option("--format", help="table | csv")] = "table",
) -> None:
    """Chỉ số 766 về phản ánh, kiến nghị / the Decision 766 feedback indicators per agency."""
    from api.deps import open_context
    from services.indicators_feedback import (
        feedback_indicators,
        online_payment_share,
        total_feedback,
    )

    try:
        lo, hi = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError:
        print("Lỗi: ngày YYYY-MM-DD / Error: dates are YYYY-MM-DD", file=sys.stderr)
        raise typer.Exit(code=2) from None
    if fmt not in ("table", "csv"):
        print("Lỗi: --format table|csv / Error: --format table|csv", file=sys.stderr)
        raise typer.Exit(code=2)
    ctx = open_context()
    with ctx.uow() as uow:
        rows = feedback_indicators(uow.session, lo, hi, ctx.clock.now())
        payments = online_payment_share(uow.session, ctx.catalog, lo, hi)
    all_rows = [*rows, total_feedback(rows)] if rows else []
    values = [
        [
            r.agency, r.all, r.early, r.on_time, r.late, r.dissatisfied,
            _fmt(r.on_time_rate), _fmt(r.satisfaction_rate),
            _fmt(r.on_time_points), _fmt(r.satisfaction_points),
        ]
        for r in all_rows
    ]  # fmt: skip
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(REPORT_COLUMNS)
        writer.writerows(values)
        return
    console = Console(width=None if sys.stdout.isatty() else 160)
    table = Table(
        "Cơ quan", "PAKN trong phạm vi", "Trước hạn", "Đúng hạn", "Quá hạn", "Không hài lòng",
        "Xử lý đúng hạn (%)", "Hài lòng (%)",
        title=f"Phản ánh, kiến nghị (Quyết định 766) {lo} → {hi}",
    )  # fmt: skip
    for v in values:
        table.add_row(*(str(x) for x in v[:8]))
    console.print(table)
    pay = Table(
        "Cơ quan", "Hồ sơ có phí", "Thanh toán trực tuyến", "Tỷ lệ (%)",
        title="Thanh toán trực tuyến (Quyết định 766)",
    )  # fmt: skip
    for p in payments:
        pay.add_row(p.agency, str(p.with_fee), str(p.paid_online), _fmt(p.share))
    console.print(pay)
