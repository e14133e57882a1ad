using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Reservations;

/// <summary>
/// One registration: an I_T nexus (identity = initiator port name + target port, ISID excluded)
/// and its reservation key. <see cref="Nexus"/> keeps the ISID seen at registration time for
/// READ FULL STATUS. Keys are not unique (SPC-4 5.12.7).
/// </summary>
public sealed record Registration(ItNexus Nexus, ulong Key, bool AllTargetPorts);

/// <summary>
/// An immutable picture of a volume's reservation table. The gate reads the current one
/// through a volatile reference without a lock; PR OUT builds a new one and publishes it.
/// </summary>
internal sealed class ReservationState
{
    public static readonly ReservationState Empty = new([], PersistentReservationType.None, -1, 0, false, null, []);

    // Identity lookups: by value (ItNexus equality) and, for the hot path, by object reference
    // of the nexus objects that paths hold (a reference hash is far cheaper than hashing names).
    private readonly Dictionary<ItNexus, int> _byValue;
    private readonly Dictionary<ItNexus, int> _byReference;

    public ReservationState(Registration[] registrations, PersistentReservationType type, int holderIndex,
        uint generation, bool aptpl, ItNexus? spc2Holder, IEnumerable<ItNexus> boundNexuses)
    {
        Registrations = registrations;
        Type = type;
        HolderIndex = type == PersistentReservationType.None || type.IsAllRegistrants() ? -1 : holderIndex;
        Generation = generation;
        Aptpl = aptpl;
        Spc2Holder = spc2Holder;
        _byValue = new Dictionary<ItNexus, int>(registrations.Length, NexusIdentityComparer.Instance);
        for (int i = 0; i < registrations.Length; i++)
            _byValue.TryAdd(registrations[i].Nexus, i);
        _byReference = new Dictionary<ItNexus, int>(registrations.Length, ReferenceEqualityComparer.Instance);
        for (int i = 0; i < registrations.Length; i++)
            _byReference.TryAdd(registrations[i].Nexus, i);
        foreach (var n in boundNexuses)
            _byReference.TryAdd(n, _byValue.TryGetValue(n, out var i) ? i : -1);
    }

    public Registration[] Registrations { get; }
    public PersistentReservationType Type { get; }
    /// <summary>Index of the holder's registration for non-AR types; -1 for none or AR.</summary>
    public int HolderIndex { get; }
    public uint Generation { get; }
    public bool Aptpl { get; }
    public ItNexus? Spc2Holder { get; }

    public bool HasReservation => Type != PersistentReservationType.None;

    /// <summary>Index of the nexus's registration, or -1. No allocation.</summary>
    public int IndexOf(ItNexus? nexus)
    {
        if (nexus is null) return -1;
        if (_byReference.TryGetValue(nexus, out int i)) return i;
        return _byValue.TryGetValue(nexus, out i) ? i : -1;
    }

    public bool IsHolder(int index) =>
        index >= 0 && (Type.IsAllRegistrants() || (Type != PersistentReservationType.None && index == HolderIndex));

    public Registration? Holder => HolderIndex >= 0 ? Registrations[HolderIndex] : null;
}

/// <summary>A mutable copy of the state that a PR OUT works on before it is committed.</summary>
internal sealed class StateBuilder
{
    public StateBuilder(ReservationState s)
    {
        Registrations = [.. s.Registrations];
        Type = s.Type;
        HolderNexus = s.Holder?.Nexus;
        Generation = s.Generation;
        Aptpl = s.Aptpl;
        Spc2Holder = s.Spc2Holder;
    }

    public List<Registration> Registrations { get; }
    public PersistentReservationType Type { get; set; }
    /// <summary>Holder identity for non-AR types.</summary>
    public ItNexus? HolderNexus { get; set; }
    public uint Generation { get; set; }
    public bool Aptpl { get; set; }
    public ItNexus? Spc2Holder { get; set; }

    public int IndexOf(ItNexus nexus)
    {
        for (int i = 0; i < Registrations.Count; i++)
            if (Registrations[i].Nexus.Equals(nexus)) return i;
        return -1;
    }

    public bool IsHolder(ItNexus nexus) =>
        Type != PersistentReservationType.None &&
        (Type.IsAllRegistrants() ? IndexOf(nexus) >= 0 : HolderNexus is not null && HolderNexus.Equals(nexus));

    public void Release()
    {
        Type = PersistentReservationType.None;
        HolderNexus = null;
    }

    public ReservationState Build(IEnumerable<ItNexus> bound)
    {
        // A non-AR reservation lives with its holder's registration; an AR one with the last registrant.
        int holder = -1;
        if (Type != PersistentReservationType.None && !Type.IsAllRegistrants())
        {
            holder = HolderNexus is null ? -1 : IndexOf(HolderNexus);
            if (holder < 0) Release();
        }
        else if (Type.IsAllRegistrants() && Registrations.Count == 0)
            Release();
        return new ReservationState([.. Registrations], Type, holder, Generation, Aptpl, Spc2Holder, bound);
    }
}

/// <summary>
/// Exactly <see cref="ItNexus"/> equality (initiator protocol + name ignoring case, ISID excluded;
/// target port protocol, name and RTPI), with a hash that is cheap on the gate's fallback path:
/// the RTPI and the tail of the initiator name, where IQNs and WWNs differ.
/// </summary>
internal sealed class NexusIdentityComparer : IEqualityComparer<ItNexus>
{
    public static readonly NexusIdentityComparer Instance = new();

    public bool Equals(ItNexus? a, ItNexus? b) =>
        ReferenceEquals(a, b) ||
        (a is not null && b is not null &&
         a.Target.RelativeTargetPortId == b.Target.RelativeTargetPortId &&
         a.Initiator.Protocol == b.Initiator.Protocol &&
         a.Target.Protocol == b.Target.Protocol &&
         string.Equals(a.Initiator.Name, b.Initiator.Name, StringComparison.OrdinalIgnoreCase) &&
         string.Equals(a.Target.Name, b.Target.Name, StringComparison.Ordinal));

    public int GetHashCode(ItNexus n)
    {
        var name = n.Initiator.Name.AsSpan();
        var tail = name[Math.Max(0, name.Length - 16)..];
        uint h = (uint)n.Target.RelativeTargetPortId * 0x9E3779B1u ^ (uint)name.Length;
        foreach (char c in tail)
        {
            // Consistent with OrdinalIgnoreCase: ASCII folded with |0x20, the rest upper-cased.
            uint folded = c < 0x80 ? (uint)(c | 0x20) : char.ToUpperInvariant(c);
            h = (h ^ folded) * 16777619u; // FNV-1a
        }
        return (int)h;
    }
}
