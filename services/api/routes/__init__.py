"""The api's routes, one ``APIRouter`` per resource; ``services.api.app`` includes them."""
