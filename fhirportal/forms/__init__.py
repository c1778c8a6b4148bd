"""Intake forms: Questionnaires the practice publishes and the QuestionnaireResponses patients send."""
