# A key-exchange flood: 4 threads run init + key exchange (Tests/interop/kms_wire.py, written
# from protocol-v1) in a loop against URL for SECONDS; prints how many completed.
# usage: python3 scripts/key-exchange-flood.py URL SECONDS   (KMS_CLIENT_KEY_FILE signs, identity-v1)
import os, sys, threading, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "interop"))
import kms_wire
url, duration = sys.argv[1], float(sys.argv[2])
done = [0]; errors = [0]; stop = time.time() + duration
def worker():
    client = kms_wire.Client(url)
    while time.time() < stop:
        try:
            client.key_exchange(kms_wire.random_token())
            done[0] += 1
        except Exception as e:
            errors[0] += 1
threads = [threading.Thread(target=worker) for _ in range(4)]
[t.start() for t in threads]; [t.join() for t in threads]
print(f"flood: {done[0]} key exchanges, {errors[0]} errors in {duration} s")
