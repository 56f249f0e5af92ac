"""Alert sinks: the webhook posts Slack-compatible JSON to a real HTTP server on loopback."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from ml.alerts import Alert, Signal
from resources.alerts import AlertSink

ALERT = Alert("2012-01-05", Signal("2012-01-05", "raw_rentals", "contract_breach", "12 rows quarantined"), "data",
              (Signal("2012-01-05", "rental_drift_report", "drift", "temp drifted", ("temp",)),))


def test_webhook_sink_posts_the_alert_text_as_slack_json():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.handle_request)
    thread.start()
    AlertSink(kind="webhook", webhook_url=f"http://127.0.0.1:{server.server_port}/hook").send(ALERT)
    thread.join(10)
    server.server_close()
    assert received and received[0]["text"].startswith("[contract_breach] raw_rentals 2012-01-05")
    assert "symptom [drift] rental_drift_report" in received[0]["text"] and "features: temp" in received[0]["text"]


def test_unknown_sink_kind_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown alert sink kind 'pager'"):
        AlertSink(kind="pager").send(ALERT)
