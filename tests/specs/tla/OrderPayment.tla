---------------------------- MODULE OrderPayment ----------------------------
(***************************************************************************)
(* An order and its payment, with routes settled atomically (Async =      *)
(* FALSE: kernel.system's settle) or delivered later (Async = TRUE:        *)
(* kernel.asynchronous in the dispatcher's order -- one FIFO queue per     *)
(* source instance, sources independent; a refused delivery is appended to *)
(* `refused' and changes nothing else).  The same model as                 *)
(* statewright.specs.order_payment; tests/specs/test_order_payment.py pins *)
(* TLC's figures.                                                          *)
(***************************************************************************)
EXTENDS Sequences, Naturals

CONSTANT Async

VARIABLES order, payment, q, refused
vars == <<order, payment, q, refused>>

Sources == {"order", "payment"}

Init == /\ order = "created"
        /\ payment = "idle"
        /\ q = [s \in Sources |-> <<>>]
        /\ refused = <<>>

(* Each machine's table: the next phase, or "reject". *)
OrderNext(o, in) ==
    CASE o = "created" /\ in = "Place" -> "placed"
      [] o = "placed" /\ in = "PaymentCaptured" -> "paid"
      [] o = "paid" /\ in = "Ship" -> "shipped"
      [] o \in {"created", "placed"} /\ in = "Cancel" -> "cancelled"
      [] OTHER -> "reject"

PaymentNext(p, in) ==
    CASE p = "idle" /\ in = "Request" -> "requested"
      [] p = "requested" /\ in = "Capture" -> "captured"
      [] p = "requested" /\ in = "Void" -> "voided"
      [] OTHER -> "reject"

(* The inputs each emitted effect is routed as (none of them emits again). *)
OrderRouted(o, in) ==
    IF o = "created" /\ in = "Place" THEN <<"Request">>
    ELSE IF o = "placed" /\ in = "Cancel" THEN <<"Void">> ELSE <<>>

PaymentRouted(p, in) ==
    IF p = "requested" /\ in = "Capture" THEN <<"PaymentCaptured">> ELSE <<>>

OrderAct(in) ==
    LET routed == OrderRouted(order, in) IN
    /\ OrderNext(order, in) # "reject"
    /\ order' = OrderNext(order, in)
    /\ IF Async
          THEN /\ q' = [q EXCEPT !["order"] = @ \o routed]
               /\ UNCHANGED <<payment, refused>>
          ELSE /\ \/ routed = <<>> /\ UNCHANGED payment
                  \/ /\ routed # <<>>
                     /\ PaymentNext(payment, routed[1]) # "reject"
                     /\ payment' = PaymentNext(payment, routed[1])
               /\ UNCHANGED <<q, refused>>

PaymentAct(in) ==
    LET routed == PaymentRouted(payment, in) IN
    /\ PaymentNext(payment, in) # "reject"
    /\ payment' = PaymentNext(payment, in)
    /\ IF Async
          THEN /\ q' = [q EXCEPT !["payment"] = @ \o routed]
               /\ UNCHANGED <<order, refused>>
          ELSE /\ \/ routed = <<>> /\ UNCHANGED order
                  \/ /\ routed # <<>>
                     /\ OrderNext(order, routed[1]) # "reject"
                     /\ order' = OrderNext(order, routed[1])
               /\ UNCHANGED <<q, refused>>

Target(s) == IF s = "order" THEN "payment" ELSE "order"

Deliver(s) ==
    /\ Async
    /\ q[s] # <<>>
    /\ q' = [q EXCEPT ![s] = Tail(@)]
    /\ LET in == Head(q[s])
           next == IF s = "order" THEN PaymentNext(payment, in) ELSE OrderNext(order, in)
       IN IF next = "reject"
             THEN /\ refused' = Append(refused, <<s, Target(s), in>>)
                  /\ UNCHANGED <<order, payment>>
             ELSE /\ IF s = "order" THEN payment' = next /\ UNCHANGED order
                                    ELSE order' = next /\ UNCHANGED payment
                  /\ UNCHANGED refused

Settled == order \in {"shipped", "cancelled"} /\ q["order"] = <<>> /\ q["payment"] = <<>>

Next == \/ \E in \in {"Place", "Cancel", "Ship"} : OrderAct(in)
        \/ PaymentAct("Capture")
        \/ \E s \in Sources : Deliver(s)
        \/ Settled /\ UNCHANGED vars   \* a final state may stop: no deadlock

Spec == Init /\ [][Next]_vars /\ \A s \in Sources : WF_vars(Deliver(s))

CancelledNeverCaptured == ~(order = "cancelled" /\ payment = "captured")
ShippedOnlyIfCaptured == order = "shipped" => payment = "captured"
CapturedSettlesTheOrder == (payment = "captured") ~> (order \in {"paid", "shipped", "cancelled"})
CapturedLeadsToPaid == (payment = "captured") ~> (order \in {"paid", "shipped"})
InFlight == q["order"] # <<>> \/ q["payment"] # <<>>
FlightDrains == InFlight ~> ~InFlight
=============================================================================
