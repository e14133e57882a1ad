namespace TcmuSharedVolume.Backends;

/// <summary>How to open a backing store (cfgstring options of a volume).</summary>
public sealed record BackingStoreOptions
{
    /// <summary>Create a missing sparse file with this many bytes; a missing file is an error when null.
    /// An existing file keeps its size (growing it is a capacity change, not an open).</summary>
    public long? CreateSizeBytes { get; init; }

    /// <summary>Allocate the whole file when creating it (fallocate), instead of leaving it sparse.</summary>
    public bool Preallocate { get; init; }

    /// <summary>Block devices only: open with O_DIRECT, bypassing the page cache.</summary>
    public bool DirectIo { get; init; }

    /// <summary>Block devices only: the administrator states that discarded ranges read back as
    /// zeroes (<c>discard_zeroes=1</c>); enables LBPRZ. An LVM thin LV whose pool zeroes new
    /// blocks is recognised without it (<see cref="ThinVolume"/>).</summary>
    public bool DiscardZeroesData { get; init; }

    /// <summary>Block devices only: where to look for what uses the device (tests give a fake sysfs).</summary>
    public BlockDeviceUsage DeviceUsage { get; init; } = BlockDeviceUsage.System;

    public static BackingStoreOptions Default { get; } = new();
}
