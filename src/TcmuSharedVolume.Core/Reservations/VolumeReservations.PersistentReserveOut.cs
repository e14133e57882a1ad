using System.Buffers.Binary;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Reservations;

public sealed partial class VolumeReservations
{
    // ------------------------------------------------------------------ PERSISTENT RESERVE OUT

    private enum Verdict { Good, Conflict, Check }

    private readonly record struct Outcome(Verdict Verdict, SenseCode Sense = default, FieldPointer? Field = null)
    {
        public static readonly Outcome Good = new(Verdict.Good);
        public static readonly Outcome Conflict = new(Verdict.Conflict);
        public static Outcome Check(SenseCode sense, FieldPointer? field = null) => new(Verdict.Check, sense, field);

        public void Apply(ScsiCommand command)
        {
            switch (Verdict)
            {
                case Verdict.Good: command.Good(0); break;
                case Verdict.Conflict: command.ReservationConflict(); break;
                default: command.CheckCondition(Sense, Field); break;
            }
        }
    }

    /// <summary>What a PR OUT does besides changing the table, applied only after the commit.</summary>
    private sealed class Effects
    {
        public bool Changed;
        public readonly List<(ItNexus Nexus, SenseCode Code)> UnitAttentions = [];
        public readonly List<ItNexus> Preempted = [];
    }

    private Outcome PersistentReserveOut(ReservationState s, StateBuilder b, Effects e, ItNexus issuer, ScsiCommand command)
    {
        var cdb = command.Cdb;
        byte action = (byte)(cdb[1] & 0x1F);
        int scope = cdb[2] >> 4;
        byte typeCode = (byte)(cdb[2] & 0x0F);
        uint listLength = BinaryPrimitives.ReadUInt32BigEndian(cdb.Slice(5));

        // Validation order of docs/reservations.md §3: which error wins matters to clients.
        if (s.Spc2Holder is not null)
            return Outcome.Conflict;
        if (action > PrOutAction.RegisterAndMove) // REPLACE LOST RESERVATION not implemented (RLR_C=0)
            return Outcome.Check(SenseCode.InvalidFieldInCdb, FieldPointer.Cdb(1, 4));
        if (listLength < 24)
            return Outcome.Check(SenseCode.ParameterListLengthError);
        if (listLength > MaxParameterListLength)
            return Outcome.Check(SenseCode.InvalidFieldInCdb, FieldPointer.Cdb(5));
        if (command.Data.Length < listLength) // the initiator sent less than the CDB announces
            return Outcome.Check(SenseCode.ParameterListLengthError);
        var p = new byte[listLength];
        command.Data.CopyTo(0, p);

        bool move = action == PrOutAction.RegisterAndMove;
        bool specIpt = !move && (p[20] & 0x08) != 0;
        bool allTgPt = !move && (p[20] & 0x04) != 0; // ignored by all but the REGISTER actions
        bool aptpl = move ? (p[17] & 0x01) != 0 : (p[20] & 0x01) != 0;
        if (!move && !specIpt && listLength != 24)
            return Outcome.Check(SenseCode.ParameterListLengthError);
        if (specIpt && action != PrOutAction.Register)
            return Outcome.Check(SenseCode.InvalidFieldInParameterList, FieldPointer.Parameter(20, 3));
        if (specIpt && listLength < 28)
            return Outcome.Check(SenseCode.ParameterListLengthError);

        ulong key = BinaryPrimitives.ReadUInt64BigEndian(p);
        ulong serviceActionKey = BinaryPrimitives.ReadUInt64BigEndian(p.AsSpan(8));
        int index = b.IndexOf(issuer);
        bool registered = index >= 0;

        if (!registered && action is PrOutAction.Reserve or PrOutAction.Release or PrOutAction.Clear
                or PrOutAction.Preempt or PrOutAction.PreemptAndAbort or PrOutAction.RegisterAndMove)
            return Outcome.Conflict;
        if (scope != 0 && action is PrOutAction.Reserve or PrOutAction.Release or PrOutAction.Preempt or PrOutAction.PreemptAndAbort)
            return Outcome.Check(SenseCode.InvalidFieldInCdb, FieldPointer.Cdb(2, 7));
        if (!PersistentReservationTypes.IsValid(typeCode) && action is PrOutAction.Reserve or PrOutAction.Preempt or PrOutAction.PreemptAndAbort)
            return Outcome.Check(SenseCode.InvalidFieldInCdb, FieldPointer.Cdb(2, 3));
        if (action != PrOutAction.RegisterAndIgnoreExistingKey)
        {
            ulong expected = registered ? b.Registrations[index].Key : 0;
            if (key != expected)
                return Outcome.Conflict;
        }

        var type = (PersistentReservationType)typeCode;
        return action switch
        {
            PrOutAction.Register or PrOutAction.RegisterAndIgnoreExistingKey =>
                Register(b, e, issuer, serviceActionKey, allTgPt, aptpl, specIpt, p),
            PrOutAction.Reserve => Reserve(b, e, issuer, type),
            PrOutAction.Release => Release(b, e, issuer, type),
            PrOutAction.Clear => Clear(b, e, issuer),
            PrOutAction.Preempt or PrOutAction.PreemptAndAbort =>
                Preempt(b, e, issuer, type, serviceActionKey, action == PrOutAction.PreemptAndAbort),
            _ => RegisterAndMove(b, e, issuer, serviceActionKey, aptpl, p),
        };
    }

    /// <summary>REGISTER / REGISTER AND IGNORE EXISTING KEY (SPC-4 5.12.7, docs/reservations.md §4).</summary>
    private Outcome Register(StateBuilder b, Effects e, ItNexus issuer, ulong serviceActionKey,
        bool allTgPt, bool aptpl, bool specIpt, byte[] p)
    {
        int index = b.IndexOf(issuer);
        if (index < 0)
        {
            if (serviceActionKey == 0)
                return Outcome.Good; // nothing to do: no registration, no PRgeneration change

            var bound = Bound();
            var add = new List<Registration>();
            void Add(ItNexus n)
            {
                if (b.IndexOf(n) < 0 && !add.Exists(r => r.Nexus.Equals(n)))
                    add.Add(new Registration(n, serviceActionKey, allTgPt));
            }
            Add(issuer);
            if (allTgPt)
                foreach (var n in bound)
                    if (n.Initiator.Equals(issuer.Initiator)) Add(n);

            if (specIpt)
            {
                uint tidLength = BinaryPrimitives.ReadUInt32BigEndian(p.AsSpan(24));
                if (28L + tidLength != p.Length)
                    return Outcome.Check(SenseCode.InvalidFieldInParameterList, FieldPointer.Parameter(24));
                var reader = new TransportIdReader(p.AsSpan(28));
                while (!reader.End)
                {
                    if (!reader.TryRead(out var tid))
                        return Outcome.Check(SenseCode.InvalidFieldInParameterList, FieldPointer.Parameter(28));
                    // The named initiator port is registered through the receiving target port,
                    // or through every target port it reaches with ALL_TG_PT (SPC-4 6.16.3).
                    bool any = false;
                    foreach (var n in bound)
                    {
                        if (!tid.Matches(n.Initiator) || !(allTgPt || n.Target.Equals(issuer.Target))) continue;
                        Add(n);
                        any = true;
                    }
                    if (!any)
                        return Outcome.Check(SenseCode.InvalidFieldInParameterList, FieldPointer.Parameter(28));
                }
            }
            // All or nothing (SPC-4 6.16.3): nothing was added to the table yet.
            if (b.Registrations.Count + add.Count > MaxRegistrations)
                return Outcome.Check(SenseCode.InsufficientRegistrationResources);
            b.Registrations.AddRange(add);
        }
        else
        {
            if (specIpt)
                return Outcome.Check(SenseCode.InvalidFieldInParameterList, FieldPointer.Parameter(20, 3));
            var own = b.Registrations[index];
            // A registration made with ALL_TG_PT speaks for its copies on the other target ports.
            var group = new List<int>();
            for (int i = 0; i < b.Registrations.Count; i++)
            {
                var r = b.Registrations[i];
                if (i == index || (own.AllTargetPorts && r.AllTargetPorts && r.Key == own.Key && r.Nexus.Initiator.Equals(own.Nexus.Initiator)))
                    group.Add(i);
            }
            if (serviceActionKey != 0)
            {
                foreach (int i in group)
                    b.Registrations[i] = b.Registrations[i] with { Key = serviceActionKey };
            }
            else
            {
                var type = b.Type;
                bool holderLeaves = type != PersistentReservationType.None && !type.IsAllRegistrants()
                    && group.Exists(i => b.Registrations[i].Nexus.Equals(b.HolderNexus));
                for (int g = group.Count - 1; g >= 0; g--)
                    b.Registrations.RemoveAt(group[g]);
                if (holderLeaves)
                {
                    // Implicit release (SPC-4 5.12.11.2.2); only RO types tell the others.
                    b.Release();
                    if (type.IsRegistrantsType())
                        foreach (var r in b.Registrations)
                            e.UnitAttentions.Add((r.Nexus, SenseCode.ReservationsReleased));
                }
                else if (type.IsAllRegistrants() && b.Registrations.Count == 0)
                    b.Release(); // the last registrant of an AR reservation took it along
            }
        }
        b.Generation++;
        b.Aptpl = aptpl;
        e.Changed = true;
        return Outcome.Good;
    }

    /// <summary>RESERVE (docs/reservations.md §5); no PRgeneration change.</summary>
    private static Outcome Reserve(StateBuilder b, Effects e, ItNexus issuer, PersistentReservationType type)
    {
        if (b.Type == PersistentReservationType.None)
        {
            b.Type = type;
            b.HolderNexus = type.IsAllRegistrants() ? null : issuer;
            e.Changed = true;
            return Outcome.Good;
        }
        // Under AR any registrant is a holder, so a second registrant's same-type RESERVE is GOOD (docs/reservations.md §5).
        return b.IsHolder(issuer) && b.Type == type ? Outcome.Good : Outcome.Conflict;
    }

    /// <summary>RELEASE (docs/reservations.md §6); no PRgeneration change.</summary>
    private static Outcome Release(StateBuilder b, Effects e, ItNexus issuer, PersistentReservationType type)
    {
        if (b.Type == PersistentReservationType.None || !b.IsHolder(issuer))
            return Outcome.Good;
        if (b.Type != type)
            return Outcome.Check(SenseCode.InvalidReleaseOfPersistentReservation);
        var old = b.Type;
        b.Release();
        e.Changed = true;
        if (old.IsRegistrantsType())
            foreach (var r in b.Registrations)
                if (!r.Nexus.Equals(issuer))
                    e.UnitAttentions.Add((r.Nexus, SenseCode.ReservationsReleased));
        return Outcome.Good;
    }

    /// <summary>CLEAR (docs/reservations.md §7).</summary>
    private static Outcome Clear(StateBuilder b, Effects e, ItNexus issuer)
    {
        foreach (var r in b.Registrations)
            if (!r.Nexus.Equals(issuer))
                e.UnitAttentions.Add((r.Nexus, SenseCode.ReservationsPreempted));
        b.Registrations.Clear();
        b.Release();
        b.Generation++;
        e.Changed = true;
        return Outcome.Good;
    }

    /// <summary>PREEMPT / PREEMPT AND ABORT, cases A-F of docs/reservations.md §8 (and §9).</summary>
    private static Outcome Preempt(StateBuilder b, Effects e, ItNexus issuer, PersistentReservationType type,
        ulong serviceActionKey, bool abort)
    {
        var removed = new List<ItNexus>();
        // Removes registrations by predicate; the issuer only when keepIssuer is false.
        void Remove(Func<Registration, bool> which, bool keepIssuer)
        {
            for (int i = b.Registrations.Count - 1; i >= 0; i--)
            {
                var r = b.Registrations[i];
                if (!which(r) || (keepIssuer && r.Nexus.Equals(issuer))) continue;
                removed.Add(r.Nexus);
                b.Registrations.RemoveAt(i);
            }
            removed.Reverse();
        }
        bool matchesAny = b.Registrations.Exists(r => r.Key == serviceActionKey);
        var oldType = b.Type;
        bool reservationChanged = false;

        if (oldType == PersistentReservationType.None)
        {
            if (serviceActionKey == 0) // case B
                return Outcome.Check(SenseCode.InvalidFieldInParameterList, FieldPointer.Parameter(8));
            if (!matchesAny)
                return Outcome.Conflict;
            // Case A: every registration with that key goes, the issuer's too (self-preempt
            // without a reservation; fence_scsi re-registers afterwards, docs/reservations.md §8).
            Remove(r => r.Key == serviceActionKey, keepIssuer: false);
        }
        else if (!oldType.IsAllRegistrants())
        {
            if (serviceActionKey == 0) // case B
                return Outcome.Check(SenseCode.InvalidFieldInParameterList, FieldPointer.Parameter(8));
            ulong holderKey = b.Registrations[b.IndexOf(b.HolderNexus!)].Key;
            if (serviceActionKey == holderKey)
            {
                // Case C: the reservation goes to the issuer, who keeps its registration.
                Remove(r => r.Key == serviceActionKey, keepIssuer: true);
                b.Type = type;
                b.HolderNexus = type.IsAllRegistrants() ? null : issuer;
                reservationChanged = oldType != type;
            }
            else
            {
                if (!matchesAny) return Outcome.Conflict;
                Remove(r => r.Key == serviceActionKey, keepIssuer: false); // case D
            }
        }
        else if (serviceActionKey == 0)
        {
            // Case E: everyone but the issuer goes; the issuer holds a new reservation.
            Remove(_ => true, keepIssuer: true);
            b.Type = type;
            b.HolderNexus = type.IsAllRegistrants() ? null : issuer;
            reservationChanged = oldType != type;
        }
        else
        {
            if (!matchesAny) return Outcome.Conflict;
            Remove(r => r.Key == serviceActionKey, keepIssuer: true); // case F
        }

        foreach (var n in removed)
            if (!n.Equals(issuer))
            {
                e.UnitAttentions.Add((n, SenseCode.RegistrationsPreempted));
                if (abort) e.Preempted.Add(n);
            }
        if (reservationChanged)
            foreach (var r in b.Registrations)
                if (!r.Nexus.Equals(issuer))
                    e.UnitAttentions.Add((r.Nexus, SenseCode.ReservationsReleased));
        b.Generation++;
        e.Changed = true;
        return Outcome.Good;
    }

    /// <summary>REGISTER AND MOVE (docs/reservations.md §10).</summary>
    private Outcome RegisterAndMove(StateBuilder b, Effects e, ItNexus issuer, ulong serviceActionKey, bool aptpl, byte[] p)
    {
        if (b.Type == PersistentReservationType.None)
            return Outcome.Check(SenseCode.InvalidFieldInCdb, FieldPointer.Cdb(1, 4));
        if (b.Type.IsAllRegistrants() || !b.IsHolder(issuer))
            return Outcome.Conflict;
        if (serviceActionKey == 0)
            return Outcome.Check(SenseCode.InvalidFieldInParameterList, FieldPointer.Parameter(8));
        bool unregister = (p[17] & 0x02) != 0;
        ushort rtpi = BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(18));
        uint tidLength = BinaryPrimitives.ReadUInt32BigEndian(p.AsSpan(20));
        if (24L + tidLength != p.Length)
            return Outcome.Check(SenseCode.InvalidFieldInParameterList, FieldPointer.Parameter(20));
        var reader = new TransportIdReader(p.AsSpan(24));
        if (!reader.TryRead(out var tid) || !reader.End)
            return Outcome.Check(SenseCode.InvalidFieldInParameterList, FieldPointer.Parameter(24));
        var destination = Array.Find(Bound(), n => tid.Matches(n.Initiator) && n.Target.RelativeTargetPortId == rtpi);
        if (destination is null)
            return Outcome.Check(SenseCode.InvalidFieldInParameterList, FieldPointer.Parameter(18));
        if (destination.Equals(issuer))
            return Outcome.Check(SenseCode.InvalidFieldInParameterList, FieldPointer.Parameter(24));

        int d = b.IndexOf(destination);
        if (d >= 0)
            b.Registrations[d] = b.Registrations[d] with { Key = serviceActionKey };
        else if (b.Registrations.Count + 1 > MaxRegistrations)
            return Outcome.Check(SenseCode.InsufficientRegistrationResources);
        else
            b.Registrations.Add(new Registration(destination, serviceActionKey, false));
        // Type and scope move with the reservation (docs/reservations.md §10; LIO writes the type into the scope).
        b.HolderNexus = destination;
        if (unregister)
            b.Registrations.RemoveAt(b.IndexOf(issuer));
        b.Generation++;
        b.Aptpl = aptpl;
        e.Changed = true;
        return Outcome.Good;
    }
}
