using System.Buffers.Binary;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Tests.Reservations;
using Xunit.Abstractions;

namespace TcmuSharedVolume.Tests.Fuzz;

/// <summary>
/// PERSISTENT RESERVE OUT parameter lists and TransportIDs, valid ones mutated and random ones,
/// against a table with registrations on two target ports and a WRITE EXCLUSIVE – REGISTRANTS ONLY
/// reservation: basic 24-byte lists, SPEC_I_PT TransportID lists, REGISTER AND MOVE lists. Every
/// answer is GOOD, RESERVATION CONFLICT or CHECK CONDITION with a PR sense; a list whose length
/// is wrong is PARAMETER LIST LENGTH ERROR; and a command that fails leaves the table and what
/// was persisted exactly as they were (all or nothing).
/// </summary>
public sealed class PersistentReserveOutFuzzTests(ITestOutputHelper output)
{
    private static readonly byte[] ValidTypes = [1, 3, 5, 6, 7, 8];

    private static readonly SenseCode[] PrSense =
    [
        SenseCode.ParameterListLengthError, SenseCode.InvalidFieldInParameterList, SenseCode.InvalidFieldInCdb,
        SenseCode.InvalidReleaseOfPersistentReservation, SenseCode.InsufficientRegistrationResources,
        SenseCode.InvalidCommandOperationCode,
    ];

    private static string Fingerprint(VolumeReservations pr)
    {
        var s = pr.Snapshot();
        return $"{s.Generation}|{s.Aptpl}|{s.Type}|{s.Holder}|{s.Spc2Holder}|" + string.Join(";", s.Registrations);
    }

    /// <summary>n0 (key A, ALL_TG_PT) holds WE-RO; n1 (key B) and n2 on port 2 (key C) are registered.</summary>
    private static PrTestKit World()
    {
        var k = new PrTestKit(nexuses: 4, targetPorts: 2);
        ResultAssert.Good(k.Register(k[0], 0, 0xA, allTgPt: true));
        ResultAssert.Good(k.Register(k[1], 0, 0xB));
        ResultAssert.Good(k.Register(k[6], 0, 0xC));
        ResultAssert.Good(k.Reserve(k[0], 0xA, PersistentReservationType.WriteExclusiveRegistrantsOnly));
        k.DrainAllUnitAttentions();
        return k;
    }

    private static ulong RandomKey(Random rng) => rng.Next(6) switch
    {
        0 => 0, 1 => 0xA, 2 => 0xB, 3 => 0xC, 4 => (ulong)rng.Next(1, 4),
        _ => (ulong)rng.NextInt64(),
    };

    private static byte[] RandomTransportId(Random rng)
    {
        switch (rng.Next(6))
        {
            case 0: return PrTestKit.IscsiTid(PrTestKit.InitiatorName(rng.Next(6)));
            case 1: return PrTestKit.IscsiTid(PrTestKit.InitiatorName(rng.Next(6)), $"40000137{rng.Next(6):x4}");
            case 2: return PrTestKit.AddressTid(rng.Next(2) == 0 ? ProtocolId.Sas : ProtocolId.FibreChannel, (ulong)rng.NextInt64());
            case 3: // an iSCSI name with no NUL inside its additional length
            {
                var t = PrTestKit.IscsiTid(PrTestKit.InitiatorName(rng.Next(6)));
                for (int i = 4; i < t.Length; i++) if (t[i] == 0) t[i] = (byte)'x';
                return t;
            }
            default:
            {
                var t = new byte[4 * rng.Next(1, 20)];
                rng.NextBytes(t);
                return t;
            }
        }
    }

    /// <summary>Changes a valid list the way a broken initiator would.</summary>
    private static byte[] Mutate(Random rng, byte[] list, int lengthFieldAt)
    {
        switch (rng.Next(6))
        {
            case 0: return list;
            case 1: // the TRANSPORTID PARAMETER DATA LENGTH lies
                if (lengthFieldAt >= 0 && list.Length >= lengthFieldAt + 4)
                    BinaryPrimitives.WriteUInt32BigEndian(list.AsSpan(lengthFieldAt),
                        rng.Next(2) == 0 ? (uint)rng.Next(0, list.Length) : (uint)rng.NextInt64(0, uint.MaxValue + 1L));
                return list;
            case 2: // a TransportID's ADDITIONAL LENGTH lies
                if (lengthFieldAt >= 0 && list.Length >= lengthFieldAt + 8)
                    BinaryPrimitives.WriteUInt16BigEndian(list.AsSpan(lengthFieldAt + 6), (ushort)rng.Next(0, 1 << 16));
                return list;
            case 3: // cut short or padded
                return rng.Next(2) == 0 ? list[..rng.Next(list.Length)] : [.. list, .. new byte[rng.Next(1, 64)]];
            default: // random bytes changed
                for (int f = rng.Next(1, 5); f > 0; f--) list[rng.Next(list.Length)] = (byte)rng.Next(256);
                return list;
        }
    }

    [Fact]
    public void ParameterListsAndTransportIdsAreAnsweredCleanly_AndAFailureChangesNothing()
    {
        int cases = FuzzBudget.Cases();
        PrTestKit k = World();
        int good = 0, conflicts = 0, checks = 0;
        var seen = new HashSet<SenseCode>();
        FuzzBudget.Run(output, "PERSISTENT RESERVE OUT parameter lists", cases, FuzzBudget.Seed(5505), (rng, i) =>
        {
            if (i % 40 == 0) k = World();
            int issuerIndex = rng.Next(k.Bound.Count);
            var issuer = k[issuerIndex];
            byte action;
            byte type = ValidTypes[rng.Next(ValidTypes.Length)];
            byte[] list;
            bool specIpt = false;
            int kind = rng.Next(4);
            switch (kind)
            {
                case 0: // SPEC_I_PT REGISTER, mostly from an unregistered nexus
                {
                    action = 0x00;
                    specIpt = true;
                    var tids = Enumerable.Range(0, rng.Next(0, 4)).Select(_ => RandomTransportId(rng)).ToArray();
                    list = PrTestKit.SpecIptList(RandomKey(rng), rng.Next(2) == 0, tids);
                    if (rng.Next(4) == 0) BinaryPrimitives.WriteUInt64BigEndian(list, RandomKey(rng));
                    list = Mutate(rng, list, 24);
                    break;
                }
                case 1: // REGISTER AND MOVE, mostly from the holder
                {
                    action = 0x07;
                    if (rng.Next(3) != 0) issuer = k[0];
                    list = PrTestKit.MoveList(rng.Next(3) == 0 ? RandomKey(rng) : 0xA, RandomKey(rng), (ushort)rng.Next(0, 4),
                        RandomTransportId(rng), unreg: rng.Next(2) == 0, aptpl: rng.Next(4) == 0);
                    list = Mutate(rng, list, 20);
                    break;
                }
                default: // a 24-byte list for any service action, flags and all
                {
                    action = (byte)rng.Next(0, 9);
                    list = PrTestKit.BasicList(RandomKey(rng), RandomKey(rng));
                    list[20] = (byte)(rng.Next(4) == 0 ? rng.Next(256) : rng.Next(2) == 0 ? 0x04 : rng.Next(2) == 0 ? 0x01 : 0);
                    specIpt = (list[20] & 0x08) != 0;
                    if (rng.Next(4) == 0) list = Mutate(rng, list, -1);
                    break;
                }
            }
            // The CDB's PARAMETER LIST LENGTH mostly says what is sent; sometimes it lies.
            int cdbLength = rng.Next(8) switch { 0 => rng.Next(0, 40), 1 => list.Length + rng.Next(1, 16), _ => list.Length };
            byte[] sent = cdbLength <= list.Length ? list[..cdbLength] : [.. list, .. new byte[cdbLength - list.Length]];

            specIpt = sent.Length > 20 && (sent[20] & 0x08) != 0; // as sent, after any mutation
            string before = Fingerprint(k.Pr);
            var persisted = k.Store.Load();
            var r = k.Execute(issuer, PrTestKit.PrOutCdb(action, type, cdbLength, scope: rng.Next(8) == 0 ? rng.Next(16) : 0), sent);

            switch (r.Status)
            {
                case ScsiStatus.Good: good++; break;
                case ScsiStatus.ReservationConflict: conflicts++; break;
                case ScsiStatus.CheckCondition:
                    checks++;
                    seen.Add(r.Sense);
                    Assert.True(PrSense.Contains(r.Sense), $"unexpected sense {r.Sense}");
                    break;
                default:
                    Assert.Fail($"status {r.Status}");
                    break;
            }
            if (!r.IsGood)
            {
                // All or nothing: a refused command changed neither the table nor what was saved.
                Assert.Equal(before, Fingerprint(k.Pr));
                Assert.Same(persisted, k.Store.Load());
            }

            // SPC-4 PERSISTENT RESERVE OUT parameter list: a list shorter than 24 bytes, or one
            // that is not 24 bytes for a service action other than REGISTER AND MOVE and REGISTER
            // with SPEC_I_PT. SPEC_I_PT on another service action is itself INVALID FIELD IN
            // PARAMETER LIST, and SPC-4 does not order the two checks.
            bool knownAction = action <= 7;
            bool extended = action == 7 || (action == 0 && specIpt);
            if (knownAction && (cdbLength < 24 || (!extended && cdbLength != 24)))
            {
                bool either = cdbLength >= 24 && specIpt && action != 0;
                Assert.True(r.Status == ScsiStatus.CheckCondition
                    && (r.Sense == SenseCode.ParameterListLengthError || (either && r.Sense == SenseCode.InvalidFieldInParameterList)),
                    $"{action:x2} with a {cdbLength}-byte list: {r}");
            }
        });
        output.WriteLine($"GOOD {good}, RESERVATION CONFLICT {conflicts}, CHECK CONDITION {checks} ({string.Join(", ", seen)})");
        Assert.True(good > 0 && conflicts > 0 && seen.Contains(SenseCode.ParameterListLengthError) && seen.Contains(SenseCode.InvalidFieldInParameterList),
            $"GOOD {good}, RESERVATION CONFLICT {conflicts}, senses {string.Join(", ", seen)}");
    }
}
