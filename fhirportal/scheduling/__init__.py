"""Appointment requests: patients ask for the practice's free Slots (or a time range), staff book or
decline. ``rules.py``: what a patient may write and which slots an Appointment holds; ``slots.py``: holding
and freeing them in the Appointment's own transaction; ``answers.py``: the patient's email once answered."""
