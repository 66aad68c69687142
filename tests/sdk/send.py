"""Sends every Segment call type with PyPI's segment-analytics-python, as an
application would, to the phimask Worker.

    .venv/bin/python tests/sdk/send.py WRITE_KEY HOST USER_ID gzip|plain
"""
import sys

import segment.analytics as analytics

write_key, host, user_id, encoding = sys.argv[1:5]
analytics.write_key = write_key
analytics.host = host
analytics.gzip = encoding == "gzip"
errors = []
analytics.on_error = lambda error, batch: errors.append(str(error))

analytics.identify(user_id, {"email": "jane.doe@example.com", "plan": "gold", "name": "Jane Doe"})
analytics.track(user_id, "Booked Cardiology Appointment",
                {"plan": "gold", "reason": "chest pain", "email": "jane.doe@example.com"})
analytics.page(user_id, "Services", "HIV Testing",
               {"url": "https://clinic.example/patients/483920?email=jane%40x.com", "plan": "gold"})
analytics.screen(user_id, "Services", "HIV Testing", {"plan": "gold"})
analytics.group(user_id, "clinic-77", {"name": "Northside Clinic", "employees": 12})
analytics.alias("anon-prev-" + user_id, user_id)
analytics.flush()
analytics.shutdown()
if errors:
    print("errors: " + "; ".join(errors), file=sys.stderr)
    sys.exit(1)
