"""What a RabbitMQ MQTT broker asks its HTTP auth server, step by step, with Microsoft's device SDK
and paho (issue 20's prototype; tools/rabbitmq-contract.md has the findings). Run it with the
device venv's python (azure-iot-device 2.14.0, paho-mqtt 1.6) against a node started by
tools/rabbitmq.sh whose --auth-url is tools/bench/rabbitmq_authlog.py:

  python rabbitmq_probe.py --env NODE_ENV_FILE --ca CA.pem --authlog LOG --rules RULES [SCENARIO…]

NODE_ENV_FILE holds the line tools/rabbitmq.sh start printed. Each step is written to LOG as a
{"mark": …} line before the requests it causes, and printed with its outcome; --summary prints
LOG step by step (path, resource, name, permission, routing key, answer). Scenarios (default all):
sdk (device + module: connect, telemetry, C2D, methods, twin), deny (user, vhost, topic write and
read, wildcards, resource denials, caching), sdkdeny (what the SDK reports), duplicate (a second
connection with the same client id).
"""
import argparse, base64, json, sys, threading, time

ap = argparse.ArgumentParser()
ap.add_argument("--env", required=True); ap.add_argument("--ca", required=True)
ap.add_argument("--authlog", required=True); ap.add_argument("--rules", required=True)
ap.add_argument("--hub", default="hub.example.net")
ap.add_argument("--summary", action="store_true")
ap.add_argument("scenarios", nargs="*")
a = ap.parse_args()

if a.summary:
    for line in open(a.authlog):
        r = json.loads(line)
        if "mark" in r:
            print("##", r["mark"]); continue
        f = r["form"]
        print("  ", r["path"].rsplit("/", 1)[-1], f.get("resource", ""), f.get("name", ""), f.get("permission", ""),
              f.get("routing_key", ""), "->", r["answer"])
    sys.exit(0)

from azure.iot.device import IoTHubDeviceClient, IoTHubModuleClient, Message  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402

env = dict(kv.split("=", 1) for kv in open(a.env).read().split())
CA = open(a.ca).read()
HUB = a.hub
KEY = base64.b64encode(b"k" * 32).decode()  # the stand-in allows any token
scenarios = a.scenarios or ["sdk", "deny", "sdkdeny", "duplicate"]


def rules(d):
    with open(a.rules, "w") as f:
        json.dump(d, f)


def mark(s):
    with open(a.authlog, "a") as f:
        f.write(json.dumps({"mark": s}) + "\n")
    print("\n==", s, flush=True)


def sdk_device(dev="dev1", retry=False):
    # The SDK always dials port 8883 (or 443 with websockets); gateway_hostname moves the host only,
    # while the user name and the token's sr keep the hub's name.
    return IoTHubDeviceClient.create_from_symmetric_key(KEY, HUB, dev, gateway_hostname=env["MQTTS_HOST"],
                                                        server_verification_cert=CA, connection_retry=retry)


def paho(dev="dev1", client_id=None, clean=False):
    """A device-like paho client (SDK user name convention), without paho's auto-reconnect."""
    ev = {"connack": None, "disconnect": None, "suback": [], "puback": []}
    c = mqtt.Client(client_id=client_id or dev, protocol=mqtt.MQTTv311, clean_session=clean)
    c.username_pw_set(f"{HUB}/{dev}/?api-version=2021-04-12", "SharedAccessSignature sr=x&sig=y&se=1")
    c.on_connect = lambda cl, u, f, rc: ev.__setitem__("connack", rc)
    c.on_disconnect = lambda cl, u, rc: ev.__setitem__("disconnect", rc)
    c.on_subscribe = lambda cl, u, mid, q: ev["suback"].append(q)
    c.on_publish = lambda cl, u, mid: ev["puback"].append(mid)
    c.tls_set(ca_certs=a.ca)
    c.connect(env["MQTTS_HOST"], int(env["MQTTS_PORT"]))
    def loop():
        while ev["disconnect"] is None:
            if c.loop(0.1) != 0:
                break
    threading.Thread(target=loop, daemon=True).start()
    for _ in range(60):
        if ev["connack"] is not None:
            break
        time.sleep(0.1)
    return c, ev


def settle(ev, secs=1.5):
    time.sleep(secs)
    return dict(ev)


def in_thread(fn, secs=8):
    box = {}
    def run():
        try:
            fn(); box["r"] = "returned"
        except Exception as e:
            box["r"] = f"raised {type(e).__module__}.{type(e).__name__}: {e}"
    t = threading.Thread(target=run, daemon=True); t.start(); t.join(secs)
    return box.get("r", f"still blocked after {secs} s")


if "sdk" in scenarios:
    rules({})
    got = []
    sub = mqtt.Client(client_id="probe-observer", protocol=mqtt.MQTTv311)
    sub.username_pw_set(env["OBSERVER_USER"], env["OBSERVER_PASS"])  # internal user: no HTTP call
    sub.on_message = lambda c, u, m: got.append((m.topic, m.payload.decode()))
    sub.connect("127.0.0.1", int(env["MQTT_PORT"]))
    sub.subscribe([("devices/+/messages/events/#", 1), ("devices/+/modules/+/messages/events/#", 1)])
    sub.loop_start()
    time.sleep(1)
    mark("sdk: device dev1 connect")
    c = sdk_device(); c.connect()
    mark("sdk: device dev1 send_message with message id, content type/encoding, a custom property")
    m = Message("hello-1", content_encoding="utf-8", content_type="application/json")
    m.custom_properties["p1"] = "v 1"; m.message_id = "mid-1"
    c.send_message(m)
    mark("sdk: device dev1 send_message again (same topic)")
    c.send_message(m)
    mark("sdk: device dev1 sets on_message_received (C2D)")
    c.on_message_received = lambda msg: None; time.sleep(1)
    mark("sdk: device dev1 sets on_method_request_received")
    c.on_method_request_received = lambda req: None; time.sleep(1)
    mark("sdk: device dev1 sets on_twin_desired_properties_patch_received")
    c.on_twin_desired_properties_patch_received = lambda p: None; time.sleep(1)
    mark("sdk: device dev1 patch_twin_reported_properties (nobody answers: left after 3 s)")
    in_thread(lambda: c.patch_twin_reported_properties({"a": 1}), 3)
    mark("sdk: device dev1 get_twin (nobody answers: left after 3 s)")
    in_thread(c.get_twin, 3)
    mark("sdk: device dev1 shutdown")
    c.shutdown(); time.sleep(1)
    mark("sdk: module dev1/mod1 connect (connection string with GatewayHostName)")
    mc = IoTHubModuleClient.create_from_connection_string(
        f"HostName={HUB};DeviceId=dev1;ModuleId=mod1;SharedAccessKey={KEY};GatewayHostName={env['MQTTS_HOST']}",
        server_verification_cert=CA, connection_retry=False)
    mc.connect()
    mark("sdk: module dev1/mod1 send_message")
    mc.send_message("from-module")
    mark("sdk: module dev1/mod1 send_message_to_output out1")
    mc.send_message_to_output("to-output", "out1")
    mark("sdk: module dev1/mod1 sets on_message_received (input messages)")
    mc.on_message_received = lambda msg: None; time.sleep(1)
    mark("sdk: module dev1/mod1 shutdown")
    mc.shutdown(); time.sleep(1)
    sub.loop_stop(); sub.disconnect()
    print("observer (MQTT, plain port) received:")
    for t in got:
        print("  ", t)

if "deny" in scenarios:
    rules({"user_reply": "deny"})
    mark("deny: CONNECT, user path answers deny")
    c, ev = paho(); print("paho:", settle(ev))
    rules({"user_reply": "allow management monitoring"})
    mark("deny: CONNECT, user path answers 'allow management monitoring' (tags)")
    c, ev = paho(); print("paho:", settle(ev, 1)); c.disconnect()
    rules({"user_reply": "maybe"})
    mark("deny: CONNECT, user path answers 'maybe'")
    c, ev = paho(); print("paho:", settle(ev))
    rules({"status": 500})
    mark("deny: CONNECT, every answer is HTTP 500 'allow'")
    c, ev = paho(); print("paho:", settle(ev))
    rules({"deny": [{"path": "vhost"}]})
    mark("deny: CONNECT, vhost path answers deny")
    c, ev = paho(); print("paho:", settle(ev))
    rules({"deny": [{"path": "topic", "match": {"routing_key": "devices.dev2.*"}}]})
    for qos in (1, 0):
        mark(f"deny: dev1 PUBLISH qos{qos} to devices/dev2/messages/events/ (topic write denied)")
        c, ev = paho(); c.publish("devices/dev2/messages/events/", b"x", qos=qos); print("paho:", settle(ev))
    mark("deny: dev1 SUBSCRIBE devices/dev2/messages/devicebound/# (topic read denied)")
    c, ev = paho(); c.subscribe("devices/dev2/messages/devicebound/#", qos=1); print("paho:", settle(ev))
    mark("deny: dev1 SUBSCRIBE own devicebound + dev2's in one packet (second denied)")
    c, ev = paho()
    c.subscribe([("devices/dev1/messages/devicebound/#", 1), ("devices/dev2/messages/devicebound/#", 1)])
    print("paho:", settle(ev))
    rules({})
    mark("deny: dev1 SUBSCRIBE devices/+/messages/devicebound/# qos0 (all allowed: what is asked?)")
    c, ev = paho(); c.subscribe("devices/+/messages/devicebound/#", qos=0); print("paho:", settle(ev, 1)); c.disconnect()
    rules({"deny": [{"path": "resource", "match": {"resource": "exchange", "permission": "write"}}]})
    mark("deny: dev1 PUBLISH own telemetry qos1, resource exchange amq.topic write denied")
    c, ev = paho(); c.publish("devices/dev1/messages/events/", b"x", qos=1); print("paho:", settle(ev)); c.disconnect()
    rules({"deny": [{"path": "resource", "match": {"resource": "queue"}}]})
    mark("deny: dev1 CONNECT (clean session 0, its session queue exists), resource queue denied")
    c, ev = paho(); print("paho:", settle(ev))
    rules({})
    mark("deny: cache: dev1 publishes topic a, then topic write is denied, publishes a again, then b")
    c, ev = paho()
    c.publish("devices/dev1/messages/events/a", b"1", qos=1); time.sleep(0.5)
    rules({"deny": [{"path": "topic", "match": {"routing_key": "devices.dev1.*"}}]})
    c.publish("devices/dev1/messages/events/a", b"2", qos=1); time.sleep(0.5)
    print("after the same topic:", settle(ev, 0.5))
    c.publish("devices/dev1/messages/events/b", b"3", qos=1)
    print("after a new topic:", settle(ev))
    rules({})
    for dev in ["a:b", "x.y", "st*r", "caf\u00e9", "sp ace"]:
        mark(f"deny: device id {dev!r}: CONNECT, PUBLISH own events, SUBSCRIBE own devicebound (all allowed)")
        c, ev = paho(dev)
        c.publish(f"devices/{dev}/messages/events/", b"1", qos=1)
        c.subscribe(f"devices/{dev}/messages/devicebound/#", qos=1)
        print("paho:", settle(ev, 1)); c.disconnect()

if "sdkdeny" in scenarios:
    def sdk_connect(label, r):
        rules(r); mark(label)
        d = sdk_device()
        try:
            d.connect(); print("SDK connected"); return d
        except Exception as e:
            print("SDK raised:", type(e).__module__ + "." + type(e).__name__, "-", e, "| cause:", repr(e.__cause__))
            d.shutdown()
    sdk_connect("sdkdeny: SDK connect, user path deny", {"user_reply": "deny"})
    sdk_connect("sdkdeny: SDK connect, vhost path deny", {"deny": [{"path": "vhost"}]})
    d = sdk_connect("sdkdeny: SDK connect, then on_message_received with topic read denied",
                    {"deny": [{"path": "topic", "match": {"permission": "read"}}]})
    print("SDK on_message_received setter:", in_thread(lambda: setattr(d, "on_message_received", lambda m: None)),
          "| connected:", d.connected)
    d.shutdown()
    sdk_connect("sdkdeny: SDK connect, its session queue's resource denied",
                {"deny": [{"path": "resource", "match": {"resource": "queue"}}]})
    rules({"deny": [{"path": "topic", "match": {"routing_key": "devices.dev1.messages.events*", "permission": "write"}}]})
    for retry in (False, True):
        mark(f"sdkdeny: SDK send_message with its telemetry topic denied (connection_retry={retry})")
        d = sdk_device(retry=retry); d.connect()
        print("SDK send_message:", in_thread(lambda: d.send_message("denied")), "| connected:", d.connected)
        try:
            d.shutdown()
        except Exception as e:
            print("shutdown:", e)
    rules({})

if "duplicate" in scenarios:
    rules({})
    mark("duplicate: dev1 connects, a second dev1 (same client id) connects, then disconnects")
    c1, ev1 = paho("dev1"); time.sleep(0.5)
    c2, ev2 = paho("dev1"); time.sleep(1.5)
    print("first:", ev1, "second:", ev2)
    c2.disconnect(); time.sleep(0.5)

rules({})
